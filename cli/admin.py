"""Operator commands: accounts, API keys, environments (flags as in the Oz CLI)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from cli.output import emit
from cli.session import acting_principal, email_option, store_session
from core import accounts, environments, keys
from core.errors import OzError
from core.models import ApiKey, Environment
from core.models.domain import KEY_EXPIRIES
from core.network import NETWORK_MODES, check_network
from core.settings import Settings

if TYPE_CHECKING:
    from cli.main import Context
    from runner.snapshots import Snapshots

ENV_COLUMNS = ("uid", "name", "docker_image", "repos", "setup_commands", "secret_names", "description")


@click.group()
def account() -> None:
    """People and their teams."""


@account.command("create")
@click.option("--email", required=True)
@click.option("--team", "team_name", default=None, help="Team to join (created if new); default: a team of one.")
@click.option("--name", "display_name", default=None, help="Display name.")
@click.option("--admin/--member", default=None, help="Team admin? Default: admin for a team's first account.")
@click.pass_obj
def account_create(
    ctx: Context, email: str, team_name: str | None, display_name: str | None, admin: bool | None
) -> None:
    with store_session(ctx.settings) as session:
        created = accounts.create_account(session, email, team_name, display_name, admin=admin)
        team = accounts.team_by_uid(session, created.team_uid)
    emit(
        {**created.model_dump(mode="json"), "team": team.name}, ctx.output_format, ("uid", "email", "team", "is_admin")
    )


@account.command("promote")
@click.argument("email")
@click.pass_obj
def account_promote(ctx: Context, email: str) -> None:
    """Make a person an admin of their team (integrations, cloud agents, team secrets)."""
    _set_admin(ctx, email, True)


@account.command("demote")
@click.argument("email")
@click.pass_obj
def account_demote(ctx: Context, email: str) -> None:
    _set_admin(ctx, email, False)


@account.command("list")
@email_option
@click.pass_obj
def account_list(ctx: Context, email: str | None) -> None:
    """The people of the acting person's team."""
    with store_session(ctx.settings) as session:
        people = accounts.list_accounts(session, acting_principal(session, email).team_uid)
    emit([p.model_dump(mode="json") for p in people], ctx.output_format, ("email", "display_name", "is_admin", "uid"))


@account.command("remove")
@click.argument("person")
@email_option
@click.pass_obj
def account_remove(ctx: Context, person: str, email: str | None) -> None:
    """Remove PERSON (an email): keys revoked, links and GitHub authorization and personal secrets
    deleted; their runs are kept for audit (a team admin)."""
    with store_session(ctx.settings) as session:
        removed = accounts.remove_account(session, acting_principal(session, email), person)
    emit(removed.model_dump(mode="json") | {"removed": True}, ctx.output_format, ("email", "removed"))


def _set_admin(ctx: Context, email: str, admin: bool) -> None:
    with store_session(ctx.settings) as session:
        changed = accounts.set_admin(session, email, admin)
    emit(changed.model_dump(mode="json"), ctx.output_format, ("uid", "email", "is_admin"))


@click.group()
def key() -> None:
    """API keys (personal, or for a cloud agent)."""


@key.command("create")
@click.option("--email", required=True, help="The person the key belongs to (or who creates the agent key).")
@click.option("--name", required=True)
@click.option("--agent", "agent_uid", default=None, help="Cloud agent uid: makes an agent key.")
@click.option("--expires", type=click.Choice(list(KEY_EXPIRIES)), default="90d", show_default=True)
@click.pass_obj
def key_create(ctx: Context, email: str, name: str, agent_uid: str | None, expires: str) -> None:
    with store_session(ctx.settings) as session:
        owner = accounts.account_by_email(session, email)
        record, raw = keys.create_key(
            session, owner, name, agent_uid=agent_uid, expires=expires, agent_limit=ctx.settings.agent_limit
        )
    if ctx.output_format == "pretty":
        click.echo(
            f"Created {record.kind.value} key {record.name!r} ({record.uid}), expires "
            f"{record.expires_at.isoformat() if record.expires_at else 'never'}.",
            err=True,
        )
        click.echo("Copy it now; it is not shown again:", err=True)
        click.echo(raw)
        return
    emit({**record.model_dump(mode="json"), "key": raw}, ctx.output_format, ("key",))


KEY_COLUMNS = ("uid", "name", "kind", "prefix", "expires_at", "last_used_at", "revoked_at")


def _key_view(record: ApiKey) -> dict:
    """A key as people see it: its prefix masked after the first characters, never the key."""
    return record.model_dump(mode="json") | {"prefix": f"{record.prefix}…"}


@key.command("list")
@email_option
@click.pass_obj
def key_list(ctx: Context, email: str | None) -> None:
    """Your keys (an admin: the team's), with kind, expiry, last use; only a prefix of each."""
    with store_session(ctx.settings) as session:
        found = keys.list_keys(session, acting_principal(session, email))
    emit([_key_view(k) for k in found], ctx.output_format, KEY_COLUMNS)


@key.command("revoke")
@click.argument("key_uid")
@email_option
@click.pass_obj
def key_revoke(ctx: Context, key_uid: str, email: str | None) -> None:
    """Revoke a key at once (its holder, or a team admin)."""
    with store_session(ctx.settings) as session:
        revoked = keys.revoke(session, acting_principal(session, email), key_uid)
    emit(_key_view(revoked), ctx.output_format, KEY_COLUMNS)


def _variables(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    """``--variable NAME=value`` pairs as a dict (the value may itself hold ``=``)."""
    pairs = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{value!r} is not NAME=value")
        pairs[name] = text
    return pairs


def _check_network(settings: Settings, network: str | None) -> None:
    try:
        check_network(network, allow_host=settings.allow_host_network, allow_bridge=settings.allow_bridge_network)
    except OzError as error:
        raise click.UsageError(f"{error.title}: {error.detail}") from None


@click.group()
def environment() -> None:
    """Environments: docker image, repos and setup commands runs execute in."""


def _env_view(env: Environment) -> dict:
    data = env.model_dump(mode="json")
    data["repos"] = [str(r) for r in env.repos]
    return data


@environment.command("create")
@click.option("--name", "-n", required=True)
@click.option("--docker-image", "-d", required=True)
@click.option("--repo", "-r", "repos", multiple=True, help="owner/repo[@branch]; repeat for more.")
@click.option("--setup-command", "-c", "setup_commands", multiple=True, help="Runs in the order given; repeatable.")
@click.option("--description", default=None, help="At most 240 characters.")
@click.option("--working-dir", default=None, help="Directory the agent starts in (must exist in the container).")
@click.option("--secret", "secrets", multiple=True, help="A managed secret runs receive as a variable; repeatable.")
@click.option("--variable", "variables", multiple=True, callback=_variables, help="NAME=value, not secret; repeatable.")
@click.option(
    "--network", type=click.Choice(NETWORK_MODES), default=None, help="The containers' network (default: egress)."
)
@click.option("--egress", "egress", multiple=True, help="host[:port] an egress container may reach; repeatable.")
@click.option("--read-only-root", is_flag=True, help="Only /workspace, /tmp and home directories are writable.")
@email_option
@click.pass_obj
def environment_create(
    ctx: Context,
    name: str,
    docker_image: str,
    repos: tuple[str, ...],
    setup_commands: tuple[str, ...],
    description: str | None,
    working_dir: str | None,
    secrets: tuple[str, ...],
    variables: dict[str, str],
    network: str | None,
    egress: tuple[str, ...],
    read_only_root: bool,
    email: str | None,
) -> None:
    _check_network(ctx.settings, network)
    with store_session(ctx.settings) as session:
        env = environments.create_environment(
            session,
            acting_principal(session, email),
            name=name,
            docker_image=docker_image,
            repos=list(repos),
            setup_commands=list(setup_commands),
            description=description,
            working_dir=working_dir,
            secret_names=list(secrets),
            variables=variables,
            network_mode=network,
            egress=list(egress),
            read_only_root=read_only_root,
        )
    emit(_env_view(env), ctx.output_format, ("uid",))


@environment.command("list")
@email_option
@click.pass_obj
def environment_list(ctx: Context, email: str | None) -> None:
    with store_session(ctx.settings) as session:
        envs = environments.list_environments(session, acting_principal(session, email).team_uid)
    emit([_env_view(e) for e in envs], ctx.output_format, ENV_COLUMNS[:4])


@environment.command("get")
@click.argument("uid")
@email_option
@click.pass_obj
def environment_get(ctx: Context, uid: str, email: str | None) -> None:
    with store_session(ctx.settings) as session:
        env = environments.get_environment(session, acting_principal(session, email).team_uid, uid)
    emit(_env_view(env), ctx.output_format, ENV_COLUMNS)


@environment.command("update")
@click.argument("uid")
@click.option("--name", "-n", default=None)
@click.option("--docker-image", "-d", default=None)
@click.option("--repo", "-r", "repos", multiple=True, help="Add (or re-branch) a repo.")
@click.option("--remove-repo", "remove_repos", multiple=True)
@click.option("--setup-command", "-c", "setup_commands", multiple=True, help="Append a setup command.")
@click.option("--remove-setup-command", "remove_setup_commands", multiple=True, help="Must match exactly.")
@click.option("--description", default=None, help="Empty string clears it.")
@click.option("--working-dir", default=None)
@click.option("--secret", "secrets", multiple=True, help="Add a managed secret.")
@click.option("--remove-secret", "remove_secrets", multiple=True)
@click.option("--variable", "variables", multiple=True, callback=_variables, help="Set NAME=value.")
@click.option("--remove-variable", "remove_variables", multiple=True)
@click.option("--network", type=click.Choice(NETWORK_MODES), default=None)
@click.option("--egress", "add_egress", multiple=True, help="Allow host[:port] (egress network).")
@click.option("--remove-egress", "remove_egress", multiple=True)
@click.option("--read-only-root/--writable-root", "read_only_root", default=None)
@email_option
@click.pass_obj
def environment_update(
    ctx: Context,
    uid: str,
    name: str | None,
    docker_image: str | None,
    repos: tuple[str, ...],
    remove_repos: tuple[str, ...],
    setup_commands: tuple[str, ...],
    remove_setup_commands: tuple[str, ...],
    description: str | None,
    working_dir: str | None,
    secrets: tuple[str, ...],
    remove_secrets: tuple[str, ...],
    variables: dict[str, str],
    remove_variables: tuple[str, ...],
    network: str | None,
    add_egress: tuple[str, ...],
    remove_egress: tuple[str, ...],
    read_only_root: bool | None,
    email: str | None,
) -> None:
    _check_network(ctx.settings, network)
    with store_session(ctx.settings) as session:
        env = environments.update_environment(
            session,
            acting_principal(session, email),
            uid,
            name=name,
            docker_image=docker_image,
            description=description,
            working_dir=working_dir,
            add_repos=list(repos),
            remove_repos=list(remove_repos),
            add_setup_commands=list(setup_commands),
            remove_setup_commands=list(remove_setup_commands),
            add_secrets=list(secrets),
            remove_secrets=list(remove_secrets),
            set_variables=variables,
            remove_variables=list(remove_variables),
            network_mode=network,
            add_egress=list(add_egress),
            remove_egress=list(remove_egress),
            read_only_root=read_only_root,
        )
    emit(_env_view(env), ctx.output_format, ENV_COLUMNS)


@environment.command("delete")
@click.argument("uid")
@click.option(
    "--force", is_flag=True, help="Delete even while unfinished runs or integrations use it (they are detached)."
)
@email_option
@click.pass_obj
def environment_delete(ctx: Context, uid: str, force: bool, email: str | None) -> None:
    with store_session(ctx.settings) as session:
        environments.delete_environment(session, acting_principal(session, email), uid, force=force)
    emit({"uid": uid, "deleted": True}, ctx.output_format, ("uid",))


@environment.group("snapshot")
def environment_snapshot() -> None:
    """This host's environment snapshots: what setup made, kept for warm starts (OZGW_SNAPSHOT_LIMIT)."""


def _snapshots(settings: Settings) -> Snapshots:
    from runner.sandbox import docker_client
    from runner.snapshots import Snapshots

    return Snapshots(settings, docker_client())


@environment_snapshot.command("list")
@click.pass_obj
def environment_snapshot_list(ctx: Context) -> None:
    rows = [
        {
            "environment": s.environment_uid,
            "image": s.image,
            "commits": ", ".join(f"{r.full_name}@{r.branch} {r.commit[:12]}" for r in s.repos),
            "created_at": s.created_at.isoformat(timespec="seconds"),
            "last_used": s.last_used.isoformat(timespec="seconds"),
            "uses": s.uses,
            "bytes": s.bytes,
        }
        for s in _snapshots(ctx.settings).all()
    ]
    emit(rows, ctx.output_format, ("environment", "commits", "last_used", "uses", "bytes"))


@environment_snapshot.command("clear")
@click.argument("uid", required=False)
@click.option("--all", "everything", is_flag=True, help="Every snapshot on this host.")
@click.pass_obj
def environment_snapshot_clear(ctx: Context, uid: str | None, everything: bool) -> None:
    """Remove an environment's snapshot (its next run repeats setup), or all of them."""
    if bool(uid) == everything:
        raise click.UsageError("give an environment id, or --all")
    try:
        removed = _snapshots(ctx.settings).clear(uid)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    emit({"removed": removed}, ctx.output_format, ("removed",))
