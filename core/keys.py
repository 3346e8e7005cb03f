"""API keys: minted once, stored only as a hash, checked on every request.

Keys are 40 random base62 characters after the ``wk-`` prefix, so a plain SHA-256 is a
safe and constant-cost lookup key (no salt or slow hash is needed for secrets of that
entropy), and the raw value exists only in the answer to ``key create``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.agents import get_agent
from core.errors import ErrorCode, OzError, invalid, not_found
from core.ids import new_uid, random_token
from core.models import Account, ApiKey, KeyKind, Principal
from core.models.domain import KEY_EXPIRIES
from core.permissions import is_admin
from core.store.tables import AccountRow, AgentRow, ApiKeyRow, utcnow

KEY_PREFIX = "wk-"
_KEY_BODY_LENGTH = 40
_LAST_USED_GRANULARITY = timedelta(minutes=1)


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def create_key(
    session: Session,
    account: Account,
    name: str,
    *,
    agent_uid: str | None = None,
    expires: str = "90d",
    agent_limit: int | None = None,
) -> tuple[ApiKey, str]:
    """Mint a personal key (or an agent key when ``agent_uid`` is given, under a plan of
    ``agent_limit`` cloud agents); returns the raw key once."""
    if not name.strip():
        raise invalid("a key needs a name")
    if expires not in KEY_EXPIRIES:
        raise invalid(f"expiry must be one of {', '.join(KEY_EXPIRIES)}")
    if agent_uid is not None:
        if agent_limit is None:
            raise TypeError("an agent key needs the plan's agent limit to check the agent is available")
        agent = get_agent(session, account.team_uid, agent_uid, agent_limit)
        if not agent.available:
            raise OzError(
                ErrorCode.FEATURE_NOT_AVAILABLE,
                f"cloud agent {agent.name!r} is over the team's plan limit; new keys cannot be created for it",
            )
    raw = KEY_PREFIX + random_token(_KEY_BODY_LENGTH)
    days = KEY_EXPIRIES[expires]
    now = utcnow()
    row = ApiKeyRow(
        uid=new_uid(),
        name=name.strip(),
        kind=KeyKind.AGENT if agent_uid else KeyKind.PERSONAL,
        team_uid=account.team_uid,
        account_uid=account.uid,
        agent_uid=agent_uid,
        key_hash=hash_key(raw),
        prefix=raw[:7],
        expires_at=None if days is None else now + timedelta(days=days),
        created_at=now,
    )
    session.add(row)
    session.flush()
    return ApiKey.model_validate(row), raw


def authenticate(session: Session, raw: str | None) -> Principal:
    """Resolve a bearer key to its principal, or ``authentication_required``.

    The error never says which check failed: a caller probing keys learns nothing.
    """
    denied = OzError(ErrorCode.AUTHENTICATION_REQUIRED)
    if not raw or not raw.startswith(KEY_PREFIX):
        raise denied
    found = session.execute(
        select(
            ApiKeyRow.uid,
            ApiKeyRow.team_uid,
            ApiKeyRow.expires_at,
            ApiKeyRow.revoked_at,
            ApiKeyRow.last_used_at,
            ApiKeyRow.agent_uid,
            AccountRow.uid.label("account_uid"),
            AccountRow.email,
            AccountRow.display_name,
            AgentRow.name.label("agent_name"),
            AgentRow.deleted_at.label("agent_deleted_at"),
            AgentRow.on_behalf_of_enabled,
        )
        .join(AccountRow, AccountRow.uid == ApiKeyRow.account_uid)
        .outerjoin(AgentRow, AgentRow.uid == ApiKeyRow.agent_uid)
        .where(ApiKeyRow.key_hash == hash_key(raw))
    ).first()
    now = utcnow()
    if found is None or found.revoked_at is not None or (found.expires_at is not None and found.expires_at <= now):
        raise denied
    if found.agent_uid:
        if found.agent_deleted_at is not None:
            raise denied
        return Principal(
            kind="service_account",
            uid=found.agent_uid,
            team_uid=found.team_uid,
            display_name=found.agent_name,
            key_uid=found.uid,
            on_behalf_of_enabled=found.on_behalf_of_enabled,
        )
    return Principal(
        kind="user",
        uid=found.account_uid,
        team_uid=found.team_uid,
        email=found.email,
        display_name=found.display_name,
        key_uid=found.uid,
    )


def record_use(session: Session, key_uid: str) -> None:
    """Note that the key was used, at most once per minute per key (a cheap conditional write)."""
    now = utcnow()
    session.execute(
        update(ApiKeyRow)
        .where(
            ApiKeyRow.uid == key_uid,
            (ApiKeyRow.last_used_at.is_(None)) | (ApiKeyRow.last_used_at < now - _LAST_USED_GRANULARITY),
        )
        .values(last_used_at=now)
    )


class UseThrottle:
    """Remembers, per process, when each key's use was last recorded, so the write happens
    once a minute per key instead of on every request."""

    def __init__(self) -> None:
        self._last: dict[str, datetime] = {}

    def due(self, key_uid: str) -> bool:
        now = utcnow()
        last = self._last.get(key_uid)
        if last is not None and now - last < _LAST_USED_GRANULARITY:
            return False
        self._last[key_uid] = now
        return True


def revoke_key(session: Session, key_uid: str) -> None:
    session.execute(update(ApiKeyRow).where(ApiKeyRow.uid == key_uid).values(revoked_at=utcnow()))


def list_keys(session: Session, principal: Principal) -> list[ApiKey]:
    """The keys a person holds (their personal keys and the agent keys they made); a team
    admin sees every key of the team.  Only the short prefix of each is ever shown."""
    query = select(ApiKeyRow).where(ApiKeyRow.team_uid == principal.team_uid)
    if not is_admin(session, principal):
        query = query.where(ApiKeyRow.account_uid == principal.uid)
    return [ApiKey.model_validate(row) for row in session.scalars(query.order_by(ApiKeyRow.created_at))]


def revoke(session: Session, principal: Principal, key_uid: str) -> ApiKey:
    """Revoke a key its holder (or a team admin) names; at once, on every process."""
    row = session.get(ApiKeyRow, key_uid)
    if row is None or row.team_uid != principal.team_uid:
        raise not_found("API key", key_uid)
    if row.account_uid != principal.uid and not is_admin(session, principal):
        raise OzError(ErrorCode.NOT_AUTHORIZED, "only the key's holder or a team admin can revoke it")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    session.flush()
    return ApiKey.model_validate(row)


def key_is_live(session: Session, key_uid: str | None) -> bool:
    """Whether a key still works (a console session ends when the key it began with is revoked)."""
    row = session.get(ApiKeyRow, key_uid) if key_uid else None
    now = utcnow()
    return row is not None and row.revoked_at is None and (row.expires_at is None or row.expires_at > now)
