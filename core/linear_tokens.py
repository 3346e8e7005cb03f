"""The Linear tokens the gateway renews, as the store keeps them: encrypted, with their expiry
and how their renewal goes.

Two kinds share one table and one renewal protocol (a claim that lapses, so one process at a
time renews and a dead one does not block the rest):

- the app's **client-credentials** token (key: the client id) — 30 days, asked for again days
  before it runs out;
- a **workspace install** (key: ``org:<organization id>``), made by the OAuth flow at
  ``/linear/install`` with ``actor=app``: a short-lived access token and a refresh token that
  Linear *rotates* on every use — so the one who renews must be the only one, and must read
  the refresh token after it holds the claim, never before.

A renewal that keeps failing shows in ``integration list`` with what to do, long before the
token itself runs out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.store import changed, utcnow
from core.store.tables import LinearTokenRow
from core.vault import Vault

RENEWAL_CLAIM = timedelta(minutes=1)
CHECK = "check OZGW_LINEAR_CLIENT_ID/_SECRET and that the app is still installed in the workspace"
REINSTALL = "an admin installs the app again at /linear/install"


@dataclass(frozen=True)
class StoredToken:
    token: str | None
    refresh_token: str | None
    expires_at: datetime | None
    renewed_at: datetime | None
    failing_since: datetime | None
    last_error: str | None

    def valid_for(self, now: datetime) -> timedelta:
        return (self.expires_at - now) if self.token and self.expires_at else timedelta(0)

    @property
    def lifetime(self) -> timedelta | None:
        """How long it was granted for (a 30-day app token, a 24-hour install token)."""
        return self.expires_at - self.renewed_at if self.expires_at and self.renewed_at else None


@dataclass(frozen=True)
class Workspace:
    """A Linear workspace the app was installed in, and the app's own user there."""

    organization_id: str
    name: str
    url_key: str | None
    app_user_id: str | None
    installed_at: datetime | None


def workspace_key(organization_id: str) -> str:
    return f"org:{organization_id}"


def stored(session: Session, vault: Vault, key: str) -> StoredToken | None:
    row = session.get(LinearTokenRow, key)
    if row is None:
        return None
    return StoredToken(
        vault.decrypt(row.access_token_encrypted) if row.access_token_encrypted else None,
        vault.decrypt(row.refresh_token_encrypted) if row.refresh_token_encrypted else None,
        row.expires_at,
        row.renewed_at,
        row.failing_since,
        row.last_error,
    )


def claim_renewal(session: Session, key: str, *, create: bool = True) -> bool:
    """Whether this caller renews now (nobody else is): a claim that lapses if it dies.
    ``create``: a client-credentials token may start from nothing; an install may not."""
    now = utcnow()
    if create and session.get(LinearTokenRow, key) is None:
        try:
            with session.begin_nested():
                session.add(LinearTokenRow(key=key, renewing_until=now + RENEWAL_CLAIM))
            return True
        except IntegrityError:
            pass
    result = session.execute(
        update(LinearTokenRow)
        .where(
            LinearTokenRow.key == key,
            or_(LinearTokenRow.renewing_until.is_(None), LinearTokenRow.renewing_until < now),
        )
        .values(renewing_until=now + RENEWAL_CLAIM)
    )
    return changed(result) == 1


def release_claim(session: Session, key: str) -> None:
    session.execute(update(LinearTokenRow).where(LinearTokenRow.key == key).values(renewing_until=None))


def save(
    session: Session, vault: Vault, key: str, token: str, expires_at: datetime, refresh_token: str | None = None
) -> None:
    """A renewal's result; a rotated refresh token replaces the one just spent."""
    row = session.get(LinearTokenRow, key)
    assert row is not None, "renewed without a claim"
    row.access_token_encrypted = vault.encrypt(token)
    if refresh_token is not None:
        row.refresh_token_encrypted = vault.encrypt(refresh_token)
    row.expires_at, row.renewed_at = expires_at, utcnow()
    row.renewing_until = row.failing_since = row.last_error = None


def record_failure(session: Session, key: str, error: str, *, revoked: bool = False) -> None:
    """A renewal failed; ``revoked`` (Linear said the grant is gone): the tokens are dropped,
    since nothing will make them work again."""
    row = session.get(LinearTokenRow, key)
    if row is None:
        return
    row.failing_since = row.failing_since or utcnow()
    row.last_error, row.renewing_until = error[:500], None
    if revoked:
        row.access_token_encrypted = row.refresh_token_encrypted = None


def install(
    session: Session,
    vault: Vault,
    workspace: Workspace,
    token: str,
    refresh_token: str | None,
    expires_at: datetime,
) -> None:
    """Keep a workspace's install (a reinstall replaces the tokens and clears any failure)."""
    key = workspace_key(workspace.organization_id)
    row = session.get(LinearTokenRow, key) or LinearTokenRow(key=key)
    row.organization_id, row.organization_name = workspace.organization_id, workspace.name
    row.url_key, row.app_user_id, row.installed_at = workspace.url_key, workspace.app_user_id, utcnow()
    row.access_token_encrypted = vault.encrypt(token)
    row.refresh_token_encrypted = vault.encrypt(refresh_token) if refresh_token else None
    row.expires_at, row.renewed_at = expires_at, utcnow()
    row.renewing_until = row.failing_since = row.last_error = None
    session.add(row)


def uninstalled(session: Session, organization_id: str, reason: str) -> bool:
    """Linear said the app left the workspace: its tokens go; the row stays to say so."""
    row = session.get(LinearTokenRow, workspace_key(organization_id))
    if row is None:
        return False
    record_failure(session, row.key, reason, revoked=True)
    return True


def forget(session: Session, organization_id: str) -> bool:
    row = session.get(LinearTokenRow, workspace_key(organization_id))
    if row is not None:
        session.delete(row)
    return row is not None


def _workspace(row: LinearTokenRow) -> Workspace:
    return Workspace(
        row.organization_id or row.key, row.organization_name or "", row.url_key, row.app_user_id, row.installed_at
    )


def installed(session: Session, organization_id: str) -> Workspace | None:
    row = session.get(LinearTokenRow, workspace_key(organization_id))
    return _workspace(row) if row is not None else None


def workspaces(session: Session) -> list[Workspace]:
    rows = session.scalars(
        select(LinearTokenRow).where(LinearTokenRow.organization_id.is_not(None)).order_by(LinearTokenRow.installed_at)
    )
    return [_workspace(row) for row in rows]


def status(session: Session, vault: Vault, key: str) -> str:
    """One line for ``integration list``: until when the token holds, or what to do."""
    token = stored(session, vault, key)
    fix = REINSTALL if key.startswith("org:") else CHECK
    now = utcnow()
    if token is None or token.token is None:
        if token is not None and token.last_error:
            whose = "the workspace's grant" if key.startswith("org:") else "the app's credentials"
            return f"no token: Linear refused {whose} ({token.last_error}); {fix}"
        return "no token yet (one is requested at the first Linear call)"
    until = token.expires_at.strftime("%Y-%m-%d %H:%M UTC") if token.expires_at else "?"
    if token.valid_for(now) <= timedelta(0):
        if token.failing_since is None and token.refresh_token:
            return f"expired {until} while idle; renewed at the next Linear call"
        return f"expired {until}: renewal failing ({token.last_error}); {fix}"
    if token.failing_since is not None:
        since = f"{token.failing_since:%Y-%m-%d %H:%M}"
        return f"valid until {until}, but renewal has been failing since {since} ({token.last_error}); {fix}"
    return f"valid until {until}, renewed automatically"
