"""Team integrations (Slack, Linear, GitHub): one per provider per team, carrying the run
defaults every request from that surface gets — environment, custom instructions, model,
MCP servers — and the switch that turns it off.

:func:`run_defaults` is what a bot calls before creating a run; its refusals are the
catalog's (``integration_not_configured``, ``integration_disabled``, and
``resource_not_found`` for an environment deleted under the integration), so Slack and
Linear explain them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.agents import agent_exists, require_agent
from core.errors import ErrorCode, OzError, invalid, not_found
from core.ids import new_uid
from core.mcp import check_usable, count_credentials, redact, reseal, seal
from core.models import Integration, IntegrationProvider, Principal
from core.models.wire import McpServerConfig
from core.permissions import require_admin
from core.store import utcnow
from core.store.tables import AgentRow, EnvironmentRow, IntegrationRow, RunRow
from core.vault import Vault

_MCP = TypeAdapter(dict[str, McpServerConfig])
TITLES = {
    IntegrationProvider.SLACK: "Slack",
    IntegrationProvider.LINEAR: "Linear",
    IntegrationProvider.GITHUB: "GitHub",
}


def check_mcp(servers: dict, vault: Vault | None) -> dict:
    """Valid MCP servers, as stored: their credentials sealed (``core.mcp``)."""
    try:
        checked = {name: cfg.model_dump(exclude_none=True) for name, cfg in _MCP.validate_python(servers).items()}
    except ValidationError as exc:
        raise invalid(f"MCP servers: {exc.errors()[0]['msg']}") from None
    check_usable(checked)
    return seal(checked, vault) or {}


def _shown(row: IntegrationRow) -> Integration:
    """The integration as people see it: MCP credentials by name only."""
    integration = Integration.model_validate(row)
    return integration.model_copy(update={"mcp_servers": redact(integration.mcp_servers) or {}})


def _environment_exists(session: Session, team_uid: str, environment_id: str) -> bool:
    env = session.get(EnvironmentRow, environment_id)
    return env is not None and env.team_uid == team_uid and env.deleted_at is None


def _row(session: Session, team_uid: str, provider: IntegrationProvider) -> IntegrationRow | None:
    return session.scalar(
        select(IntegrationRow).where(IntegrationRow.team_uid == team_uid, IntegrationRow.provider == provider.value)
    )


def create_integration(
    session: Session,
    principal: Principal,
    provider: IntegrationProvider,
    *,
    environment_id: str | None,
    prompt: str | None = None,
    model_id: str | None = None,
    mcp_servers: dict | None = None,
    agent_uid: str | None = None,
    vault: Vault | None = None,
) -> Integration:
    """``vault`` seals MCP credentials; needed when ``mcp_servers`` have headers or env;
    ``agent_uid``: the cloud agent its runs execute as (its prompt, skills, MCP servers, secrets)."""
    require_admin(session, principal, "set up an integration")
    if _row(session, principal.team_uid, provider) is not None:
        raise OzError(ErrorCode.CONFLICT, f"the team already has a {TITLES[provider]} integration; use update")
    if environment_id and not _environment_exists(session, principal.team_uid, environment_id):
        raise not_found("environment", environment_id)
    now = utcnow()
    row = IntegrationRow(
        uid=new_uid(),
        team_uid=principal.team_uid,
        provider=provider.value,
        enabled=True,
        environment_id=environment_id,
        custom_prompt=prompt or None,
        model_id=model_id or None,
        mcp_servers=check_mcp(mcp_servers or {}, vault),
        settings={"agent_uid": _agent(session, principal.team_uid, agent_uid)} if agent_uid else {},
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    return _shown(row)


def _agent(session: Session, team_uid: str, agent_uid: str) -> str:
    """A cloud agent of the team, by uid (``resource_not_found`` otherwise)."""
    return require_agent(session, team_uid, agent_uid)


def list_integrations(session: Session, team_uid: str) -> list[Integration]:
    rows = session.scalars(
        select(IntegrationRow).where(IntegrationRow.team_uid == team_uid).order_by(IntegrationRow.provider)
    )
    return [_shown(r) for r in rows]


def update_integration(
    session: Session,
    principal: Principal,
    provider: IntegrationProvider,
    *,
    environment_id: str | None = None,
    remove_environment: bool = False,
    prompt: str | None = None,
    model_id: str | None = None,
    mcp_servers: dict | None = None,
    enabled: bool | None = None,
    agent_uid: str | None = None,
    remove_agent: bool = False,
    vault: Vault | None = None,
) -> Integration:
    """Change only what is given; an empty ``prompt`` or ``model_id`` clears it."""
    require_admin(session, principal, "change an integration")
    row = _row(session, principal.team_uid, provider)
    if row is None:
        raise not_found(f"{TITLES[provider]} integration", "for this team")
    if environment_id and remove_environment:
        raise invalid("give --environment or --remove-environment, not both")
    if environment_id:
        if not _environment_exists(session, principal.team_uid, environment_id):
            raise not_found("environment", environment_id)
        row.environment_id = environment_id
    if remove_environment:
        row.environment_id = None
    if prompt is not None:
        row.custom_prompt = prompt or None
    if model_id is not None:
        row.model_id = model_id or None
    if mcp_servers is not None:
        row.mcp_servers = check_mcp(mcp_servers, vault)
    if enabled is not None:
        row.enabled = enabled
    if agent_uid and remove_agent:
        raise invalid("give --agent or --remove-agent, not both")
    if agent_uid or remove_agent:
        settings = {k: v for k, v in (row.settings or {}).items() if k != "agent_uid"}
        row.settings = settings | ({"agent_uid": _agent(session, principal.team_uid, agent_uid)} if agent_uid else {})
    row.updated_at = utcnow()
    session.flush()
    return _shown(row)


def delete_integration(session: Session, principal: Principal, provider: IntegrationProvider) -> None:
    require_admin(session, principal, "delete an integration")
    row = _row(session, principal.team_uid, provider)
    if row is None:
        raise not_found(f"{TITLES[provider]} integration", "for this team")
    session.delete(row)


def rotate_all(session: Session, vault: Vault) -> int:
    """Re-seal every MCP credential integrations, cloud agents and runs store under the newest
    key (and seal any stored before they were sealed); returns how many."""
    count = 0
    for integration in session.scalars(select(IntegrationRow)):
        if n := count_credentials(integration.mcp_servers):
            integration.mcp_servers = reseal(integration.mcp_servers, vault) or {}
            count += n
    for table, column in ((AgentRow, "settings"), (RunRow, "config")):  # MCP servers inside a JSON document
        for row in session.scalars(select(table)):
            document = getattr(row, column) or {}
            if n := count_credentials(document.get("mcp_servers")):
                setattr(row, column, {**document, "mcp_servers": reseal(document["mcp_servers"], vault)})
                count += n
    return count


@dataclass(frozen=True)
class RunDefaults:
    environment_id: str
    instructions: str | None
    model_id: str | None
    mcp_servers: dict
    agent_uid: str | None = None
    """The cloud agent the surface's runs execute as, when the integration names one."""


def run_defaults(session: Session, team_uid: str, provider: IntegrationProvider, *, setup_url: str) -> RunDefaults:
    """What a run from this surface gets — or the catalog error that explains why none can start
    (``setup_url``: where a person is sent to set the integration up)."""
    title = TITLES[provider]
    row = _row(session, team_uid, provider)
    if row is None:
        raise OzError(
            ErrorCode.INTEGRATION_NOT_CONFIGURED,
            f"create it with `oz-gateway integration create {provider.value} --environment <id>`",
            title=f"{title} integration is not configured",
            integration_name=provider.value,
            setup_url=setup_url,
        )
    if not row.enabled:
        raise OzError(
            ErrorCode.INTEGRATION_DISABLED, f"turn it back on with `oz-gateway integration enable {provider.value}`"
        )
    if not row.environment_id:
        raise OzError(
            ErrorCode.INTEGRATION_NOT_CONFIGURED,
            f"it has no environment; set one with `oz-gateway integration update {provider.value} --environment <id>`",
            title=f"{title} integration is not configured",
            integration_name=provider.value,
            setup_url=setup_url,
        )
    if not _environment_exists(session, team_uid, row.environment_id):
        raise OzError(
            ErrorCode.RESOURCE_NOT_FOUND,
            f"environment {row.environment_id} of the {title} integration "
            "was deleted; point the integration at another one",
        )
    agent_uid = (row.settings or {}).get("agent_uid")
    if agent_uid and not agent_exists(session, team_uid, agent_uid):
        raise OzError(
            ErrorCode.RESOURCE_NOT_FOUND,
            f"cloud agent {agent_uid} of the {title} integration was deleted; "
            f"run `oz-gateway integration update {provider.value} --agent <uid>` (or --remove-agent)",
        )
    return RunDefaults(row.environment_id, row.custom_prompt, row.model_id, dict(row.mcp_servers or {}), agent_uid)
