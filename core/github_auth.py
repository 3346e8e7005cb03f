"""People's GitHub authorizations: the user tokens runs clone, push and open PRs with.

Tokens are stored encrypted (:class:`core.secrets.Vault`); a token GitHub rejected is marked
stale so the next run asks the person to authorize again instead of failing obscurely.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from core.secrets import Vault
from core.store import utcnow
from core.store.tables import GitHubAuthorizationRow


@dataclass(frozen=True)
class GitHubAuthorization:
    account_uid: str
    login: str
    token: str


def save_authorization(session: Session, vault: Vault, account_uid: str, login: str, token: str) -> None:
    now = utcnow()
    row = session.get(GitHubAuthorizationRow, account_uid)
    if row is None:
        row = GitHubAuthorizationRow(account_uid=account_uid, created_at=now)
        session.add(row)
    row.login = login
    row.token_encrypted = vault.encrypt(token)
    row.stale = False
    row.updated_at = now


def authorization_for(session: Session, vault: Vault, account_uid: str) -> GitHubAuthorization | None:
    row = session.get(GitHubAuthorizationRow, account_uid)
    if row is None or row.stale:
        return None
    return GitHubAuthorization(account_uid, row.login, vault.decrypt(row.token_encrypted))


def mark_stale(session: Session, account_uid: str) -> None:
    row = session.get(GitHubAuthorizationRow, account_uid)
    if row is not None:
        row.stale = True
        row.updated_at = utcnow()
