"""Operator commands for credentials: people's GitHub authorizations, the team App's enabled
orgs, managed secrets, and re-encrypting everything under a new key."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import click
from sqlalchemy.orm import Session

from cli.output import emit
from cli.session import acting_principal, email_option, store_session
from core import github_auth, github_oauth, github_orgs, integrations, managed_secrets
from core.accounts import account_by_email, get_or_create_team
from core.vault import Vault

if TYPE_CHECKING:
    from cli.main import Context


@click.group()
def github() -> None:
    """GitHub: personal authorization and the team GitHub App."""


@github.command("status")
@click.option("--email", required=True)
@click.pass_obj
def github_status(ctx: Context, email: str) -> None:
    with store_session(ctx.settings) as session:
        state = github_auth.status(session, account_by_email(session, email).uid)
    emit({"email": email, **state}, ctx.output_format, ("email", "authorized", "login"))


@github.command("authorize")
@click.option("--email", required=True)
@click.pass_obj
def github_authorize(ctx: Context, email: str) -> None:
    """Print the link the person opens to authorize GitHub (valid 7 days)."""
    with store_session(ctx.settings) as session:
        account = account_by_email(session, email)
    emit({"email": email, "url": github_oauth.authorize_link(ctx.settings, account.uid)}, ctx.output_format, ("url",))


@github.group("org")
def org() -> None:
    """Enabled GitHub orgs: where the team GitHub App may act for agent-key runs."""


def _team_uid(session: Session, team: str | None, email: str | None) -> str:
    if team:
        return get_or_create_team(session, team).uid
    return acting_principal(session, email).team_uid


def _change_org(
    ctx: Context, change: Callable[[Session, str, str], object], name: str, team: str | None, email: str | None
) -> None:
    with store_session(ctx.settings) as session:
        team_uid = _team_uid(session, team, email)
        change(session, team_uid, name)
        orgs = github_orgs.enabled_orgs(session, team_uid)
    emit({"enabled_orgs": orgs}, ctx.output_format, ("enabled_orgs",))


@org.command("enable")
@click.argument("name")
@click.option("--team", default=None)
@email_option
@click.pass_obj
def org_enable(ctx: Context, name: str, team: str | None, email: str | None) -> None:
    _change_org(ctx, github_orgs.enable_org, name, team, email)


@org.command("disable")
@click.argument("name")
@click.option("--team", default=None)
@email_option
@click.pass_obj
def org_disable(ctx: Context, name: str, team: str | None, email: str | None) -> None:
    _change_org(ctx, github_orgs.disable_org, name, team, email)


@org.command("list")
@click.option("--team", default=None)
@email_option
@click.pass_obj
def org_list(ctx: Context, team: str | None, email: str | None) -> None:
    with store_session(ctx.settings) as session:
        orgs = github_orgs.enabled_orgs(session, _team_uid(session, team, email))
    emit([{"org": o} for o in orgs], ctx.output_format, ("org",))


@click.group()
def secret() -> None:
    """Managed secrets, injected as environment variables into the runs that name them."""


@secret.command("create")
@click.argument("name")
@click.option("--team", "scope", flag_value="team", default=True, help="A team secret (default).")
@click.option("--personal", "scope", flag_value="personal", help="Your own secret; wins over a team one.")
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Read the value from a file (default: standard input). Never from the command line.",
)
@email_option
@click.pass_obj
def secret_create(ctx: Context, name: str, scope: managed_secrets.Scope, path: str | None, email: str | None) -> None:
    if path:
        with open(path) as handle:
            value = handle.read()
    else:
        if sys.stdin.isatty():
            click.echo(f"Value for {name} (end with Ctrl-D):", err=True)
        value = sys.stdin.read()
    value = value.rstrip("\n")
    with store_session(ctx.settings) as session:
        managed_secrets.put_secret(
            session, Vault.from_settings(ctx.settings), acting_principal(session, email), name, value, scope
        )
    emit({"name": name, "scope": scope, "stored": True}, ctx.output_format, ("name", "scope"))


@secret.command("list")
@email_option
@click.pass_obj
def secret_list(ctx: Context, email: str | None) -> None:
    with store_session(ctx.settings) as session:
        found = managed_secrets.list_secrets(session, acting_principal(session, email))
    emit(found, ctx.output_format, ("name", "scope", "updated_at"))


@secret.command("delete")
@click.argument("name")
@click.option("--team", "scope", flag_value="team", default=True)
@click.option("--personal", "scope", flag_value="personal")
@email_option
@click.pass_obj
def secret_delete(ctx: Context, name: str, scope: managed_secrets.Scope, email: str | None) -> None:
    with store_session(ctx.settings) as session:
        managed_secrets.delete_secret(session, acting_principal(session, email), name, scope)
    emit({"name": name, "scope": scope, "deleted": True}, ctx.output_format, ("name",))


@secret.command("rotate-keys")
@click.pass_obj
def secret_rotate_keys(ctx: Context) -> None:
    """Re-encrypt every stored secret, GitHub token and MCP credential under the newest
    OZGW_ENCRYPTION_KEYS key (MCP credentials stored before they were encrypted get encrypted).

    Put the new key first in OZGW_ENCRYPTION_KEYS (keep the old ones after it), run this,
    then the old keys can be dropped.
    """
    vault = Vault.from_settings(ctx.settings)
    with store_session(ctx.settings) as session:
        count = (
            managed_secrets.rotate_all(session, vault)
            + github_auth.rotate_all(session, vault)
            + integrations.rotate_all(session, vault)
        )
    emit({"re_encrypted": count}, ctx.output_format, ("re_encrypted",))
