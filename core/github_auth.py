"""People's GitHub authorizations: the user tokens runs clone, push and open PRs with.

Tokens are stored encrypted (:class:`core.secrets.Vault`); a token GitHub rejected is marked
stale so the next run asks the person to authorize again instead of failing obscurely.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.secrets import Vault
from core.store import utcnow
from core.store.tables import GitHubAuthorizationRow

EXPIRY_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True)
class GitHubAuthorization:
    account_uid: str
    login: str
    token: str


def save_authorization(
    session: Session,
    vault: Vault,
    account_uid: str,
    login: str,
    token: str,
    refresh_token: str | None = None,
    expires_at: datetime | None = None,
) -> None:
    now = utcnow()
    row = session.get(GitHubAuthorizationRow, account_uid)
    if row is None:
        row = GitHubAuthorizationRow(account_uid=account_uid, created_at=now)
        session.add(row)
    row.login = login
    row.token_encrypted = vault.encrypt(token)
    row.refresh_token_encrypted = vault.encrypt(refresh_token) if refresh_token else None
    row.expires_at = expires_at
    row.stale = False
    row.updated_at = now


Refresher = Callable[[str], tuple[str, str | None, datetime | None]]
"""Given a refresh token, a new (token, refresh token, expiry) — ``core.github_oauth.refresh``."""


def authorization_for(
    session: Session, vault: Vault, account_uid: str, refresher: Refresher | None = None
) -> GitHubAuthorization | None:
    """The person's usable token; an expired one is refreshed (rotating the refresh token)
    when a refresher is given, and ``None`` means they must authorize (again)."""
    row = session.get(GitHubAuthorizationRow, account_uid)
    if row is None or row.stale:
        return None
    if row.expires_at is not None and row.expires_at <= utcnow() + EXPIRY_MARGIN:
        if refresher is None or row.refresh_token_encrypted is None:
            return None
        try:
            token, refresh_token, expires_at = refresher(vault.decrypt(row.refresh_token_encrypted))
        except Exception:  # GitHub refused the refresh token: the person has to authorize again
            row.stale = True
            return None
        save_authorization(session, vault, account_uid, row.login, token, refresh_token, expires_at)
        return GitHubAuthorization(account_uid, row.login, token)
    return GitHubAuthorization(account_uid, row.login, vault.decrypt(row.token_encrypted))


def status(session: Session, account_uid: str) -> dict:
    row = session.get(GitHubAuthorizationRow, account_uid)
    if row is None:
        return {"authorized": False, "login": None}
    return {
        "authorized": not row.stale,
        "login": row.login,
        "stale": row.stale,
        "expires_at": row.expires_at,
        "updated_at": row.updated_at,
    }


def rotate_all(session: Session, vault: Vault) -> int:
    """Re-encrypt every stored GitHub token under the newest key; returns how many rows."""
    count = 0
    for row in session.scalars(select(GitHubAuthorizationRow)):
        row.token_encrypted = vault.rotate(row.token_encrypted)
        if row.refresh_token_encrypted:
            row.refresh_token_encrypted = vault.rotate(row.refresh_token_encrypted)
        count += 1
    return count


def mark_stale(session: Session, account_uid: str) -> None:
    row = session.get(GitHubAuthorizationRow, account_uid)
    if row is not None:
        row.stale = True
        row.updated_at = utcnow()
