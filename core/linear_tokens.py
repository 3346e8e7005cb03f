"""The Linear app's client-credentials token as the store keeps it: encrypted, with its expiry
and how its renewal goes.  A client-credentials token lives 30 days; the gateway asks for a new
one days before (``bots/linear/tokens.py``), one process at a time (a renewal claim that
lapses), and shows a renewal that keeps failing in ``integration list`` with what to do — long
before the token itself runs out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.secrets import Vault
from core.store import utcnow
from core.store.tables import LinearTokenRow

RENEWAL_CLAIM = timedelta(minutes=1)
CHECK = "check OZGW_LINEAR_CLIENT_ID/_SECRET and that the app is still installed in the workspace"


@dataclass(frozen=True)
class StoredToken:
    token: str | None
    expires_at: datetime | None
    failing_since: datetime | None
    last_error: str | None

    def valid_for(self, now: datetime) -> timedelta:
        return (self.expires_at - now) if self.token and self.expires_at else timedelta(0)


def stored(session: Session, vault: Vault, client_id: str) -> StoredToken | None:
    row = session.get(LinearTokenRow, client_id)
    if row is None:
        return None
    token = vault.decrypt(row.access_token_encrypted) if row.access_token_encrypted else None
    return StoredToken(token, row.expires_at, row.failing_since, row.last_error)


def claim_renewal(session: Session, client_id: str) -> bool:
    """Whether this caller renews now (nobody else is): a claim that lapses if it dies."""
    now = utcnow()
    if session.get(LinearTokenRow, client_id) is None:
        try:
            with session.begin_nested():
                session.add(LinearTokenRow(client_id=client_id, renewing_until=now + RENEWAL_CLAIM))
            return True
        except IntegrityError:
            pass
    result = session.execute(
        update(LinearTokenRow)
        .where(
            LinearTokenRow.client_id == client_id,
            or_(LinearTokenRow.renewing_until.is_(None), LinearTokenRow.renewing_until < now),
        )
        .values(renewing_until=now + RENEWAL_CLAIM)
    )
    return result.rowcount == 1


def save(session: Session, vault: Vault, client_id: str, token: str, expires_at: datetime) -> None:
    row = session.get(LinearTokenRow, client_id)
    assert row is not None, "renewed without a claim"
    row.access_token_encrypted = vault.encrypt(token)
    row.expires_at, row.renewed_at = expires_at, utcnow()
    row.renewing_until = row.failing_since = row.last_error = None


def record_failure(session: Session, client_id: str, error: str) -> None:
    row = session.get(LinearTokenRow, client_id)
    if row is None:
        return
    row.failing_since = row.failing_since or utcnow()
    row.last_error, row.renewing_until = error[:500], None


def status(session: Session, vault: Vault, client_id: str) -> str:
    """One line for ``integration list``: until when the token holds, or what to do."""
    token = stored(session, vault, client_id)
    now = utcnow()
    if token is None or token.token is None:
        if token is not None and token.last_error:
            return f"no token: Linear refused the app's credentials ({token.last_error}); {CHECK}"
        return "no token yet (one is requested at the first Linear call)"
    until = token.expires_at.strftime("%Y-%m-%d %H:%M UTC") if token.expires_at else "?"
    if token.valid_for(now) <= timedelta(0):
        return f"expired {until}: renewal failing ({token.last_error}); {CHECK}"
    if token.failing_since is not None:
        since = f"{token.failing_since:%Y-%m-%d %H:%M}"
        return f"valid until {until}, but renewal has been failing since {since} ({token.last_error}); {CHECK}"
    return f"valid until {until}, renewed automatically"
