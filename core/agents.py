"""Cloud agents (agent identities): the service accounts runs execute as.

Availability is derived, never stored: the default agent and the oldest agents up to the
plan limit are available, the rest are listed but unusable.  Deriving it means a changed
limit takes effect at once, as the reference describes for a downgraded team.  The limit is
the caller's to give (``OZGW_AGENT_LIMIT``, read where the settings are: the web process, the
worker, the CLI); nothing here reads settings.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.errors import ErrorCode, OzError, not_found
from core.ids import new_uid
from core.mcp import check_usable, redact, seal
from core.models import AgentIdentity, Principal
from core.models.wire import AgentCreateRequest, AgentResponse, AgentUpdateRequest
from core.permissions import require_admin
from core.store.tables import AgentRow, ApiKeyRow, EnvironmentRow, utcnow
from core.unsupported import refuse_unsupported
from core.vault import Vault

# Fields kept in the row's JSON ``settings`` rather than in columns of their own.
_SETTINGS_FIELDS = (
    "agent_type",
    "credential_strategy",
    "default_runner_uid",
    "harness",
    "mcp_servers",
    "secrets",
    "skills",
    "worker_host",
)
_COLUMN_FIELDS = ("name", "description", "prompt", "base_model", "base_harness", "environment_id")


def _live_rows(session: Session, team_uid: str) -> list[AgentRow]:
    stmt = (
        select(AgentRow)
        .where(AgentRow.team_uid == team_uid, AgentRow.deleted_at.is_(None))
        .order_by(AgentRow.is_default.desc(), AgentRow.created_at, AgentRow.uid)
    )
    return list(session.scalars(stmt))


def list_agents(session: Session, team_uid: str, limit: int) -> list[AgentIdentity]:
    """The team's live agents, each ``available`` or not under a plan of ``limit`` agents."""
    return [
        AgentIdentity.model_validate(row).model_copy(update={"available": i < limit})
        for i, row in enumerate(_live_rows(session, team_uid))
    ]


def get_agent(session: Session, team_uid: str, uid: str, limit: int) -> AgentIdentity:
    for agent in list_agents(session, team_uid, limit):
        if agent.uid == uid:
            return agent
    raise not_found("agent", uid)


def agent_exists(session: Session, team_uid: str, uid: str) -> bool:
    """Whether ``uid`` names a live agent of the team, whatever the plan."""
    return any(row.uid == uid for row in _live_rows(session, team_uid))


def require_agent(session: Session, team_uid: str, uid: str) -> str:
    """``uid`` when it names a live agent of the team (whatever the plan); else not found."""
    if not agent_exists(session, team_uid, uid):
        raise not_found("agent", uid)
    return uid


def default_agent(session: Session, team_uid: str, limit: int) -> AgentIdentity:
    return next(a for a in list_agents(session, team_uid, limit) if a.is_default)


def _require_human(principal: Principal) -> None:
    if not principal.is_human:
        raise OzError(
            ErrorCode.NOT_AUTHORIZED, "only people can create, update or delete cloud agents, not an agent key"
        )


def _check_environment(session: Session, team_uid: str, environment_id: str | None) -> None:
    if environment_id:
        env = session.get(EnvironmentRow, environment_id)
        if env is None or env.team_uid != team_uid or env.deleted_at is not None:
            raise not_found("environment", environment_id)


def _apply(row: AgentRow, fields: dict, vault: Vault | None) -> None:
    settings = dict(row.settings or {})
    refuse_unsupported(fields, where="")
    if fields.get("mcp_servers"):
        check_usable(fields["mcp_servers"])
        fields = {**fields, "mcp_servers": seal(fields["mcp_servers"], vault)}
    for key, value in fields.items():
        if key in _COLUMN_FIELDS:
            setattr(row, key, value or None)
        elif key == "on_behalf_of_enabled":
            row.on_behalf_of_enabled = bool(value)
        elif key in _SETTINGS_FIELDS:
            if value in (None, "", [], {}):
                settings.pop(key, None)
            else:
                settings[key] = value
    row.settings = settings


def create_agent(
    session: Session, principal: Principal, request: AgentCreateRequest, vault: Vault | None = None, *, limit: int
) -> AgentIdentity:
    """``vault`` seals MCP credentials (``core.mcp``); needed when the request has some."""
    _require_human(principal)
    require_admin(session, principal, "create a cloud agent")
    live = _live_rows(session, principal.team_uid)
    if len(live) >= limit:
        raise OzError(
            ErrorCode.FEATURE_NOT_AVAILABLE,
            f"your plan allows {limit} cloud agents and the team already has {len(live)}",
        )
    _check_environment(session, principal.team_uid, request.environment_id)
    now = utcnow()
    row = AgentRow(
        uid=new_uid(), team_uid=principal.team_uid, is_default=False, settings={}, created_at=now, updated_at=now
    )
    _apply(row, request.model_dump(mode="json", exclude_none=True), vault)
    session.add(row)
    session.flush()
    return get_agent(session, principal.team_uid, row.uid, limit)


def update_agent(
    session: Session,
    principal: Principal,
    uid: str,
    request: AgentUpdateRequest,
    vault: Vault | None = None,
    *,
    limit: int,
) -> AgentIdentity:
    _require_human(principal)
    require_admin(session, principal, "change a cloud agent")
    agent = get_agent(session, principal.team_uid, uid, limit)
    if not agent.available:
        raise OzError(
            ErrorCode.FEATURE_NOT_AVAILABLE, f"cloud agent {agent.name!r} is over the plan limit and cannot be edited"
        )
    fields = request.model_dump(mode="json", exclude_unset=True)
    fields = {k: v for k, v in fields.items() if v is not None}  # null means "leave unchanged"
    _check_environment(session, principal.team_uid, fields.get("environment_id"))
    row = session.get(AgentRow, uid)
    assert row is not None
    _apply(row, fields, vault)
    row.updated_at = utcnow()
    session.flush()
    return get_agent(session, principal.team_uid, uid, limit)


def delete_agent(session: Session, principal: Principal, uid: str) -> None:
    """Soft-delete the agent and revoke every key bound to it."""
    _require_human(principal)
    require_admin(session, principal, "delete a cloud agent")
    row = session.get(AgentRow, require_agent(session, principal.team_uid, uid))
    assert row is not None
    if row.is_default:
        raise OzError(ErrorCode.OPERATION_NOT_SUPPORTED, "the team's default cloud agent cannot be deleted")
    now = utcnow()
    row.deleted_at = now
    session.execute(
        update(ApiKeyRow).where(ApiKeyRow.agent_uid == uid, ApiKeyRow.revoked_at.is_(None)).values(revoked_at=now)
    )


def to_response(agent: AgentIdentity) -> AgentResponse:
    settings = agent.settings
    return AgentResponse.model_validate(
        {
            "available": agent.available,
            "created_at": agent.created_at,
            "updated_at": agent.updated_at,
            "uid": agent.uid,
            "name": agent.name,
            "description": agent.description,
            "prompt": agent.prompt,
            "base_model": agent.base_model,
            "base_harness": agent.base_harness,
            "environment_id": agent.environment_id,
            "on_behalf_of_enabled": agent.on_behalf_of_enabled,
            "default_runner_uid": settings.get("default_runner_uid", ""),
            "memory": {},
            "secrets": settings.get("secrets", []),
            "skills": settings.get("skills", []),
            "agent_type": settings.get("agent_type") or ("CUSTOM" if not agent.is_default else None),
            "credential_strategy": settings.get("credential_strategy"),
            "harness": settings.get("harness"),
            "mcp_servers": redact(settings.get("mcp_servers")),
            "worker_host": settings.get("worker_host"),
        }
    )
