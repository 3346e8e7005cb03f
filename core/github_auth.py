"""People's GitHub authorizations: the user tokens runs clone, push and open PRs with.

Tokens are stored encrypted (:class:`core.vault.Vault`); a token GitHub rejected is marked
stale so the next run asks the person to authorize again instead of failing obscurely.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.models import Account
from core.store import Store, utcnow
from core.store.tables import AccountRow, GitHubAuthorizationRow
from core.vault import Vault

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
    store: Store, vault: Vault, account_uid: str, refresher: Refresher | None = None
) -> GitHubAuthorization | None:
    """The person's usable token; an expired one is refreshed (rotating the refresh token)
    when a refresher is given, and ``None`` means they must authorize (again).

    The refresh is a call to GitHub, made outside any transaction (a slow GitHub must not hold
    the store's write lock).  Two runs may refresh at once: the refresh token rotates, so only
    the first succeeds — the second sees the stored refresh token has changed meanwhile and
    uses the first one's token instead of marking the authorization stale."""
    with store.reader() as session:
        row = session.get(GitHubAuthorizationRow, account_uid)
        if row is None or row.stale:
            return None
        login, token_cipher, refresh_cipher = row.login, row.token_encrypted, row.refresh_token_encrypted
        expired = row.expires_at is not None and row.expires_at <= utcnow() + EXPIRY_MARGIN
    if not expired:
        return GitHubAuthorization(account_uid, login, vault.decrypt(token_cipher))
    if refresher is None or refresh_cipher is None:
        return None
    try:
        token, refresh_token, expires_at = refresher(vault.decrypt(refresh_cipher))
    except Exception:  # GitHub refused the refresh token (or another run rotated it first)
        return _after_failed_refresh(store, vault, account_uid, refresh_cipher)
    with store.session() as session:
        row = session.get(GitHubAuthorizationRow, account_uid)
        if row is None or row.refresh_token_encrypted != refresh_cipher:  # another run got there first
            return _current(row, vault, account_uid)
        save_authorization(session, vault, account_uid, login, token, refresh_token, expires_at)
    return GitHubAuthorization(account_uid, login, token)


def _after_failed_refresh(store: Store, vault: Vault, account_uid: str, used: str) -> GitHubAuthorization | None:
    with store.session() as session:
        row = session.get(GitHubAuthorizationRow, account_uid)
        if row is not None and row.refresh_token_encrypted != used:  # rotated by a concurrent run
            return _current(row, vault, account_uid)
        if row is not None:
            row.stale = True  # the person has to authorize again
        return None


def _current(row: GitHubAuthorizationRow | None, vault: Vault, account_uid: str) -> GitHubAuthorization | None:
    if row is None or row.stale:
        return None
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


def account_for_login(session: Session, login: str) -> Account | None:
    """The live account that authorized GitHub as ``login`` (GitHub logins ignore case) — how
    a person signs in to the console with GitHub.  A stale authorization still names them: the
    sign-in itself has just proved the login."""
    row = session.scalar(
        select(AccountRow)
        .join(GitHubAuthorizationRow, GitHubAuthorizationRow.account_uid == AccountRow.uid)
        .where(func.lower(GitHubAuthorizationRow.login) == login.lower(), AccountRow.removed_at.is_(None))
        .limit(1)
    )
    return None if row is None else Account.model_validate(row)
