"""Who a person on another service is here: Slack users by an explicit link, Linear users by email.

:func:`resolve` answers with an :class:`Account` or a typed reason why not, so every bot
explains a missing identity the same way and no run is ever created under someone
else's name.  An unlinked person's request is parked as a :class:`LinkRequest` — single
use and expiring — and handed back once they have linked, so they are not asked twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from core.errors import ErrorCode, OzError, not_found
from core.ids import new_uid
from core.models import Account, ExternalIdentity, IntegrationProvider, Principal
from core.store import changed, utcnow
from core.store.tables import AccountRow, ExternalIdentityRow, LinkRequestRow

LINK_REQUEST_TTL = timedelta(minutes=30)


@dataclass(frozen=True)
class LinkRequired:
    """The person has no linked account yet; ``request_uid`` holds what they asked for."""

    provider: IntegrationProvider
    request_uid: str


def principal_of(account: Account) -> Principal:
    """The principal a person's run is created as: always their own account."""
    return Principal(
        kind="user",
        uid=account.uid,
        team_uid=account.team_uid,
        email=account.email,
        display_name=account.display_name,
    )


def linked_account(
    session: Session, provider: IntegrationProvider, external_team: str, external_user: str
) -> Account | None:
    row = session.scalar(
        select(AccountRow)
        .join(ExternalIdentityRow, ExternalIdentityRow.account_uid == AccountRow.uid)
        .where(
            ExternalIdentityRow.provider == provider.value,
            ExternalIdentityRow.external_team == external_team,
            ExternalIdentityRow.external_user == external_user,
        )
    )
    return None if row is None else Account.model_validate(row)


def account_for_email(session: Session, email: str | None) -> Account | None:
    if not email:
        return None
    row = session.scalar(
        select(AccountRow).where(AccountRow.email == email.strip().lower(), AccountRow.removed_at.is_(None))
    )
    return None if row is None else Account.model_validate(row)


def link(
    session: Session, provider: IntegrationProvider, external_team: str, external_user: str, account_uid: str
) -> ExternalIdentity:
    """Link (or re-link) an external user to an account; the newest link wins."""
    if session.get(AccountRow, account_uid) is None:
        raise not_found("account", account_uid)
    key = (provider.value, external_team, external_user)
    row = session.get(ExternalIdentityRow, key)
    if row is None:
        row = ExternalIdentityRow(
            provider=provider.value, external_team=external_team, external_user=external_user, linked_at=utcnow()
        )
        session.add(row)
    row.account_uid = account_uid
    row.linked_at = utcnow()
    session.flush()
    return ExternalIdentity.model_validate(row)


def unlink(session: Session, provider: IntegrationProvider, external_team: str, external_user: str) -> bool:
    result = session.execute(
        delete(ExternalIdentityRow).where(
            ExternalIdentityRow.provider == provider.value,
            ExternalIdentityRow.external_team == external_team,
            ExternalIdentityRow.external_user == external_user,
        )
    )
    return bool(changed(result))


def list_links(session: Session, provider: IntegrationProvider | None = None) -> list[ExternalIdentity]:
    query = select(ExternalIdentityRow).order_by(ExternalIdentityRow.provider, ExternalIdentityRow.external_user)
    if provider is not None:
        query = query.where(ExternalIdentityRow.provider == provider.value)
    return [ExternalIdentity.model_validate(r) for r in session.scalars(query)]


def resolve_linked(
    session: Session,
    provider: IntegrationProvider,
    external_team: str,
    external_user: str,
    pending: dict,
) -> Account | LinkRequired:
    """The linked account, or a parked request the person can resume by linking."""
    account = linked_account(session, provider, external_team, external_user)
    if account is not None:
        return account
    return LinkRequired(provider, park_request(session, provider, external_team, external_user, pending))


# --- parked requests --------------------------------------------------------------------------


def park_request(
    session: Session, provider: IntegrationProvider, external_team: str, external_user: str, payload: dict
) -> str:
    now = utcnow()
    uid = new_uid()
    session.add(
        LinkRequestRow(
            uid=uid,
            provider=provider.value,
            external_team=external_team,
            external_user=external_user,
            payload=payload,
            created_at=now,
            expires_at=now + LINK_REQUEST_TTL,
        )
    )
    # Keep the table small: expired requests are of no use to anyone.
    session.execute(delete(LinkRequestRow).where(LinkRequestRow.expires_at < now - LINK_REQUEST_TTL))
    return uid


@dataclass(frozen=True)
class LinkRequest:
    uid: str
    provider: IntegrationProvider
    external_team: str
    external_user: str
    payload: dict


def _expired() -> OzError:
    return OzError(ErrorCode.NOT_AUTHORIZED, "this link has expired or was already used; mention the app again")


def open_request(session: Session, uid: str) -> LinkRequest:
    """A parked request that is still usable (for showing the link page)."""
    row = session.get(LinkRequestRow, uid)
    if row is None or row.used_at is not None or row.expires_at < utcnow():
        raise _expired()
    return LinkRequest(row.uid, IntegrationProvider(row.provider), row.external_team, row.external_user, row.payload)


def complete_request(session: Session, uid: str, account_uid: str) -> LinkRequest:
    """Use a parked request once: link its external user to ``account_uid`` and return it.

    The compare-and-set on ``used_at`` makes the link single-use even when two tabs submit it.
    """
    request = open_request(session, uid)
    used = session.execute(
        update(LinkRequestRow)
        .where(LinkRequestRow.uid == uid, LinkRequestRow.used_at.is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if changed(used) != 1:
        raise _expired()
    link(session, request.provider, request.external_team, request.external_user, account_uid)
    return request
