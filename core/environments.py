"""Environments: the image, repos and setup commands a run executes in.

Edits follow the Oz CLI: ``--repo`` / ``--setup-command`` add, ``--remove-repo`` /
``--remove-setup-command`` remove an exact match, scalar flags replace.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import ErrorCode, OzError, invalid, not_found
from core.ids import new_uid
from core.managed_secrets import check_name
from core.models import Environment, Principal, RepoRef, UserProfile
from core.models.wire import CloudEnvironment, CloudEnvironmentConfig, GitHubRepo, Scope
from core.network import parse_endpoint, parse_endpoints
from core.store.tables import AccountRow, EnvironmentRow, IntegrationRow, RunRow, utcnow


def _to_environment(row: EnvironmentRow) -> Environment:
    return Environment.model_validate(row)


def _validated(data: dict) -> Environment:
    try:
        return Environment.model_validate(data)
    except ValidationError as exc:
        raise invalid("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None


def _edited_egress(uid: str, current: list[str], add: Sequence[str], remove: Sequence[str]) -> list[str]:
    """The allow-list with ``remove`` taken out (each must be in it) and ``add`` put in."""
    try:
        kept = {str(e) for e in parse_endpoints(current)}
        for text in remove:
            endpoint = str(parse_endpoint(text))
            if endpoint not in kept:
                raise invalid(f"egress endpoint {endpoint} is not in environment {uid}")
            kept.discard(endpoint)
        return [*kept, *add]
    except ValueError as exc:
        raise invalid(f"egress: {exc}") from None


def _parse_repos(specs: Sequence[str]) -> list[RepoRef]:
    try:
        return [RepoRef.parse(s) for s in specs]
    except ValueError as exc:
        raise invalid(str(exc)) from None


def create_environment(
    session: Session,
    principal: Principal,
    *,
    name: str,
    docker_image: str,
    repos: Sequence[str] = (),
    setup_commands: Sequence[str] = (),
    description: str | None = None,
    working_dir: str | None = None,
    secret_names: Sequence[str] = (),
    variables: dict[str, str] | None = None,
    network_mode: str | None = None,
    egress: Sequence[str] = (),
    read_only_root: bool = False,
) -> Environment:
    now = utcnow()
    env = _validated(
        {
            "uid": new_uid(),
            "team_uid": principal.team_uid,
            "name": name,
            "docker_image": docker_image,
            "repos": _parse_repos(list(repos)),
            "setup_commands": list(setup_commands),
            "description": description,
            "working_dir": working_dir,
            "secret_names": [check_name(n) for n in secret_names],
            "variables": dict(variables or {}),
            "network_mode": network_mode,
            "egress": list(egress),
            "read_only_root": read_only_root,
            "creator_uid": principal.uid,
            "last_editor_uid": principal.uid,
            "created_at": now,
            "updated_at": now,
        }
    )
    session.add(
        EnvironmentRow(
            **env.model_dump(mode="json", exclude={"created_at", "updated_at"}), created_at=now, updated_at=now
        )
    )
    session.flush()
    return env


def _row(session: Session, team_uid: str, uid: str) -> EnvironmentRow:
    row = session.get(EnvironmentRow, uid)
    if row is None or row.team_uid != team_uid or row.deleted_at is not None:
        raise not_found("environment", uid)
    return row


def get_environment(session: Session, team_uid: str, uid: str) -> Environment:
    return _to_environment(_row(session, team_uid, uid))


def list_environments(session: Session, team_uid: str, sort_by: str = "last_updated") -> list[Environment]:
    order = (EnvironmentRow.name, EnvironmentRow.uid) if sort_by == "name" else (EnvironmentRow.updated_at.desc(),)
    rows = session.scalars(
        select(EnvironmentRow)
        .where(EnvironmentRow.team_uid == team_uid, EnvironmentRow.deleted_at.is_(None))
        .order_by(*order)
    )
    return [_to_environment(r) for r in rows]


def update_environment(
    session: Session,
    principal: Principal,
    uid: str,
    *,
    name: str | None = None,
    docker_image: str | None = None,
    description: str | None = None,
    working_dir: str | None = None,
    add_repos: Sequence[str] = (),
    remove_repos: Sequence[str] = (),
    add_setup_commands: Sequence[str] = (),
    remove_setup_commands: Sequence[str] = (),
    add_secrets: Sequence[str] = (),
    remove_secrets: Sequence[str] = (),
    set_variables: dict[str, str] | None = None,
    remove_variables: Sequence[str] = (),
    network_mode: str | None = None,
    add_egress: Sequence[str] = (),
    remove_egress: Sequence[str] = (),
    read_only_root: bool | None = None,
) -> Environment:
    row = _row(session, principal.team_uid, uid)
    env = _to_environment(row)
    repos = list(env.repos)
    for spec in remove_repos:
        target = _parse_repos([spec])[0]
        kept = [r for r in repos if r.full_name != target.full_name]
        if len(kept) == len(repos):
            raise invalid(f"repo {spec} is not in environment {uid}")
        repos = kept
    for ref in _parse_repos(list(add_repos)):
        if any(r.full_name == ref.full_name for r in repos):
            repos = [ref if r.full_name == ref.full_name else r for r in repos]
        else:
            repos.append(ref)
    commands = list(env.setup_commands)
    for command in remove_setup_commands:
        if command not in commands:
            raise invalid(f"setup command {command!r} is not in environment {uid} (it must match exactly)")
        commands.remove(command)
    commands.extend(add_setup_commands)
    names = [n for n in env.secret_names if n not in remove_secrets]
    names += [check_name(n) for n in add_secrets if n not in names]
    variables = {k: v for k, v in env.variables.items() if k not in remove_variables}
    variables.update(set_variables or {})
    egress = _edited_egress(uid, env.egress, add_egress, remove_egress)
    changes = {
        "egress": egress,
        "secret_names": names,
        "variables": variables,
        "repos": repos,
        "setup_commands": commands,
        "last_editor_uid": principal.uid,
        "updated_at": utcnow(),
    }
    for key, value in (
        ("name", name),
        ("docker_image", docker_image),
        ("working_dir", working_dir),
        ("network_mode", network_mode),
        ("read_only_root", read_only_root),
    ):
        if value is not None:
            changes[key] = value
    if description is not None:
        changes["description"] = description or None
    updated = _validated({**env.model_dump(), **changes})
    for key, value in updated.model_dump(mode="json", exclude={"created_at", "updated_at", "uid", "team_uid"}).items():
        setattr(row, key, value)
    row.updated_at = updated.updated_at
    session.flush()
    return updated


def environment_in_use(session: Session, uid: str) -> bool:
    """Whether runs that have not finished still point at the environment."""
    active = ("QUEUED", "PENDING", "CLAIMED", "INPROGRESS", "BLOCKED")
    count = session.scalar(select(func.count()).where(RunRow.environment_id == uid, RunRow.state.in_(active)))
    return bool(count)


def delete_environment(session: Session, principal: Principal, uid: str, *, force: bool = False) -> None:
    """Soft-delete; refused while unfinished runs or an integration use it, unless ``force``
    (as ``oz environment delete``), which detaches it from those integrations — their requests
    are then refused saying they have no environment, rather than pointing at a deleted one."""
    row = _row(session, principal.team_uid, uid)
    users = session.scalars(
        select(IntegrationRow).where(
            IntegrationRow.team_uid == principal.team_uid, IntegrationRow.environment_id == uid
        )
    ).all()
    if not force and users:
        names = ", ".join(sorted(u.provider for u in users))
        raise OzError(
            ErrorCode.CONFLICT,
            f"environment {uid} is used by the {names} integration; point it elsewhere "
            "(`oz-gateway integration update … --environment <id>`) or pass --force to detach it",
        )
    if not force and environment_in_use(session, uid):
        raise OzError(
            ErrorCode.CONFLICT,
            f"environment {uid} is used by runs that have not finished; pass --force to delete it anyway",
        )
    for integration in users:
        integration.environment_id = None
    row.deleted_at = utcnow()


def _profile(session: Session, uid: str | None) -> UserProfile | None:
    if uid is None:
        return None
    account = session.get(AccountRow, uid)
    if account is None:
        return UserProfile(uid=uid, type="service_account")
    return UserProfile(uid=account.uid, email=account.email, display_name=account.display_name, type="user")


def to_cloud_environment(session: Session, env: Environment) -> CloudEnvironment:
    last = session.execute(
        select(RunRow.created_at, RunRow.status_message, RunRow.started_at)
        .where(RunRow.environment_id == env.uid)
        .order_by(RunRow.created_at.desc())
        .limit(1)
    ).first()
    setup_failed = bool(
        last
        and last.started_at is None
        and (last.status_message or {}).get("error_code") == ErrorCode.ENVIRONMENT_SETUP_FAILED
    )
    return CloudEnvironment(
        uid=env.uid,
        config=CloudEnvironmentConfig(
            name=env.name,
            description=env.description,
            docker_image=env.docker_image,
            github_repos=[GitHubRepo(owner=r.owner, repo=r.repo) for r in env.repos],
            setup_commands=env.setup_commands,
        ),
        last_updated=env.updated_at,
        setup_failed=setup_failed,
        creator=_profile(session, env.creator_uid),
        last_editor=_profile(session, env.last_editor_uid),
        last_task_run_timestamp=last.created_at if last else None,
        scope=Scope(type="Team", uid=env.team_uid),
    )
