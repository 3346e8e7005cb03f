"""``oz-gateway identity``: an admin links or unlinks a person's Slack user by hand.

People normally link themselves from the "Link your account" button; this is for admins
setting a workspace up, or taking a link back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from cli.output import emit
from cli.session import store_session
from core import identity
from core.accounts import account_by_email
from core.errors import not_found
from core.models import IntegrationProvider

if TYPE_CHECKING:
    from cli.main import Context

LINKABLE = click.Choice([IntegrationProvider.SLACK.value])
COLUMNS = ("provider", "external_team", "external_user", "account_uid", "linked_at")


@click.group("identity")
def identity_group() -> None:
    """Links between people's Slack users and their gateway accounts."""


@identity_group.command("link")
@click.argument("provider", type=LINKABLE)
@click.argument("workspace")
@click.argument("user")
@click.argument("email")
@click.pass_obj
def identity_link(ctx: Context, provider: str, workspace: str, user: str, email: str) -> None:
    """Link Slack USER (U…) of WORKSPACE (T…) to the account with EMAIL."""
    with store_session(ctx.settings) as session:
        account = account_by_email(session, email)
        linked = identity.link(session, IntegrationProvider(provider), workspace, user, account.uid)
    emit(linked.model_dump(mode="json"), ctx.output_format, COLUMNS)


@identity_group.command("unlink")
@click.argument("provider", type=LINKABLE)
@click.argument("workspace")
@click.argument("user")
@click.pass_obj
def identity_unlink(ctx: Context, provider: str, workspace: str, user: str) -> None:
    with store_session(ctx.settings) as session:
        if not identity.unlink(session, IntegrationProvider(provider), workspace, user):
            raise not_found(f"{provider} link", f"{workspace}/{user}")
    click.echo(f"unlinked {provider} user {user} of {workspace}", err=True)


@identity_group.command("list")
@click.option("--provider", type=LINKABLE, default=None)
@click.pass_obj
def identity_list(ctx: Context, provider: str | None) -> None:
    with store_session(ctx.settings) as session:
        links = identity.list_links(session, IntegrationProvider(provider) if provider else None)
    emit([link.model_dump(mode="json") for link in links], ctx.output_format, COLUMNS)
