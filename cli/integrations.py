"""``oz-gateway integration``: the team's Slack / Linear / GitHub integrations (as ``oz integration``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click
from sqlalchemy.orm import Session

from cli.output import emit
from cli.session import acting_principal, email_option, store_session
from core import integrations, linear_tokens
from core.errors import ErrorCode, OzError, invalid
from core.models import Integration, IntegrationProvider
from core.permissions import require_admin
from core.settings import Settings
from core.vault import Vault

if TYPE_CHECKING:
    from cli.main import Context

PROVIDER = click.Choice([p.value for p in IntegrationProvider])
COLUMNS = ("provider", "enabled", "environment_id", "model_id", "uid")


def _mcp(value: str | None) -> dict | None:
    """``--mcp`` takes inline JSON or the path of a JSON file, as the Oz CLI does."""
    if value is None:
        return None
    text = Path(value).read_text() if not value.lstrip().startswith("{") and Path(value).is_file() else value
    try:
        servers = json.loads(text)
    except json.JSONDecodeError:
        raise invalid('--mcp must be JSON (inline or a file): {"name": {"url": ...}}') from None
    if not isinstance(servers, dict):
        raise invalid("--mcp must be a JSON object of servers by name")
    return servers


def _view(integration: Integration) -> dict:
    return integration.model_dump(mode="json")


@click.group()
def integration() -> None:
    """Integrations: the environment and defaults runs from Slack, Linear or GitHub get."""


@integration.command("create")
@click.argument("provider", type=PROVIDER)
@click.option("--environment", "environment_id", required=True, help="Environment the runs execute in.")
@click.option("--prompt", default=None, help="Custom instructions placed before every request.")
@click.option("--model", "model_id", default=None)
@click.option("--mcp", default=None, help="MCP servers: inline JSON or a JSON file.")
@click.option("--agent", "agent_uid", default=None, help="The cloud agent its runs execute as.")
@email_option
@click.pass_obj
def integration_create(
    ctx: Context,
    provider: str,
    environment_id: str,
    prompt: str | None,
    model_id: str | None,
    mcp: str | None,
    agent_uid: str | None,
    email: str | None,
) -> None:
    with store_session(ctx.settings) as session:
        created = integrations.create_integration(
            session,
            acting_principal(session, email),
            IntegrationProvider(provider),
            environment_id=environment_id,
            prompt=prompt,
            model_id=model_id,
            mcp_servers=_mcp(mcp),
            agent_uid=agent_uid,
            vault=Vault.from_settings(ctx.settings),
        )
    emit(_view(created), ctx.output_format, COLUMNS)


@integration.command("update")
@click.argument("provider", type=PROVIDER)
@click.option("--environment", "environment_id", default=None)
@click.option("--remove-environment", is_flag=True, help="Detach the environment (runs are then refused).")
@click.option("--prompt", default=None, help="Empty string clears it.")
@click.option("--model", "model_id", default=None, help="Empty string clears it.")
@click.option("--mcp", default=None, help="Replaces the MCP servers: inline JSON or a JSON file.")
@click.option("--remove-mcp", is_flag=True, help="Removes every MCP server.")
@click.option("--agent", "agent_uid", default=None, help="The cloud agent its runs execute as.")
@click.option("--remove-agent", is_flag=True, help="Its runs execute as the person who asked again.")
@email_option
@click.pass_obj
def integration_update(
    ctx: Context,
    provider: str,
    environment_id: str | None,
    remove_environment: bool,
    prompt: str | None,
    model_id: str | None,
    mcp: str | None,
    remove_mcp: bool,
    agent_uid: str | None,
    remove_agent: bool,
    email: str | None,
) -> None:
    if mcp is not None and remove_mcp:
        raise invalid("give --mcp or --remove-mcp, not both")
    with store_session(ctx.settings) as session:
        updated = integrations.update_integration(
            session,
            acting_principal(session, email),
            IntegrationProvider(provider),
            environment_id=environment_id,
            remove_environment=remove_environment,
            prompt=prompt,
            model_id=model_id,
            mcp_servers={} if remove_mcp else _mcp(mcp),
            agent_uid=agent_uid,
            remove_agent=remove_agent,
            vault=Vault.from_settings(ctx.settings),
        )
    emit(_view(updated), ctx.output_format, COLUMNS)


@integration.command("delete")
@click.argument("provider", type=PROVIDER)
@email_option
@click.pass_obj
def integration_delete(ctx: Context, provider: str, email: str | None) -> None:
    """Remove the team's integration: that surface's mentions are then answered with how to set it up."""
    with store_session(ctx.settings) as session:
        integrations.delete_integration(session, acting_principal(session, email), IntegrationProvider(provider))
    emit({"provider": provider, "deleted": True}, ctx.output_format, ("provider", "deleted"))


@integration.command("list")
@email_option
@click.pass_obj
def integration_list(ctx: Context, email: str | None) -> None:
    """Each integration, and for Linear how its token stands (until when, or what to fix)."""
    with store_session(ctx.settings) as session:
        found = integrations.list_integrations(session, acting_principal(session, email).team_uid)
        token = _linear_token(ctx.settings, session)
        workspaces = _workspace_views(ctx.settings, session)
    linear: dict = {"token": token}
    if workspaces:
        linear["workspaces"] = [f"{w['name']}: {w['token']}" for w in workspaces]
    views = [_view(i) | (linear if i.provider == IntegrationProvider.LINEAR else {}) for i in found]
    extra = tuple(column for column in ("token", "workspaces") if any(column in v for v in views))
    emit(views, ctx.output_format, (*COLUMNS, *extra))


def _workspace_views(settings: Settings, session: Session) -> list[dict]:
    vault = Vault.from_settings(settings)
    return [
        {
            "organization_id": w.organization_id,
            "name": w.name,
            "url_key": w.url_key,
            "app_user_id": w.app_user_id,
            "installed_at": w.installed_at.isoformat() if w.installed_at else None,
            "token": linear_tokens.status(session, vault, linear_tokens.workspace_key(w.organization_id)),
        }
        for w in linear_tokens.workspaces(session)
    ]


@click.group("linear")
def linear() -> None:
    """Linear workspaces the app is installed in (``/linear/install``), and how their tokens stand."""


@linear.command("workspaces")
@click.pass_obj
def linear_workspaces(ctx: Context) -> None:
    with store_session(ctx.settings) as session:
        views = _workspace_views(ctx.settings, session)
    emit(views, ctx.output_format, ("organization_id", "name", "app_user_id", "token"))


@linear.command("uninstall")
@click.argument("organization_id")
@email_option
@click.pass_obj
def linear_uninstall(ctx: Context, organization_id: str, email: str | None) -> None:
    """Forget a workspace's install (its tokens are deleted; remove the app in Linear too)."""
    with store_session(ctx.settings) as session:
        require_admin(session, acting_principal(session, email), "uninstall the Linear app from a workspace")
        if not linear_tokens.forget(session, organization_id):
            raise OzError(ErrorCode.RESOURCE_NOT_FOUND, f"no Linear workspace {organization_id} is installed")
    gone = {"organization_id": organization_id, "uninstalled": True}
    emit(gone, ctx.output_format, ("organization_id", "uninstalled"))


def _linear_token(settings: Settings, session: Session) -> str:
    if settings.linear_client_id and settings.linear_client_secret:
        return linear_tokens.status(session, Vault.from_settings(settings), settings.linear_client_id)
    if settings.linear_access_token:
        return "a fixed token (OZGW_LINEAR_ACCESS_TOKEN), never renewed: set OZGW_LINEAR_CLIENT_ID/_SECRET instead"
    return "none: set OZGW_LINEAR_CLIENT_ID/_SECRET (the app's credentials)"


def _switch(ctx: Context, provider: str, email: str | None, enabled: bool) -> None:
    with store_session(ctx.settings) as session:
        changed = integrations.update_integration(
            session, acting_principal(session, email), IntegrationProvider(provider), enabled=enabled
        )
    emit(_view(changed), ctx.output_format, COLUMNS)


@integration.command("disable")
@click.argument("provider", type=PROVIDER)
@email_option
@click.pass_obj
def integration_disable(ctx: Context, provider: str, email: str | None) -> None:
    _switch(ctx, provider, email, enabled=False)


@integration.command("enable")
@click.argument("provider", type=PROVIDER)
@email_option
@click.pass_obj
def integration_enable(ctx: Context, provider: str, email: str | None) -> None:
    _switch(ctx, provider, email, enabled=True)
