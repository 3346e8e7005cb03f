"""The run lifecycle: create, cancel, follow up, and every state change.

All status changes go through :func:`set_status`, a compare-and-set on the stored state
that checks the transition table below.  Writing first and reading after means two
processes racing on one run (a cancel and a worker's claim) resolve in the database, on
SQLite as on PostgreSQL, and the loser learns the state that won.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import structlog
from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import budgets, skills
from core.agents import get_agent
from core.errors import ErrorCode, OzError, invalid, not_found
from core.ids import new_run_id
from core.mcp import check_usable, seal
from core.models import (
    AgentIdentity,
    ModelUsage,
    Origin,
    Principal,
    Run,
    RunSourceType,
    RunState,
    StatusMessage,
    add_usage,
)
from core.models.wire import (
    ACTIVE_STATES,
    SANDBOX_STATES,
    TERMINAL_STATES,
    AmbientAgentConfig,
    FollowupRequest,
    Harness,
    McpServerConfig,
    RunAgentRequest,
)
from core.permissions import is_admin, require_steer
from core.prices import PriceTable
from core.queue import RunQueue
from core.store import Store, changed, utcnow
from core.store.tables import AccountRow, EnvironmentRow, RunAttachmentRow, RunFollowupRow, RunMetadataRow, RunRow
from core.unsupported import refuse_unsupported
from core.vault import Vault

log = structlog.get_logger(__name__)

S = RunState
TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    S.QUEUED: frozenset({S.PENDING, S.CANCELLED, S.FAILED, S.ERROR}),
    S.PENDING: frozenset({S.CLAIMED, S.QUEUED, S.FAILED, S.ERROR}),
    S.CLAIMED: frozenset({S.INPROGRESS, S.QUEUED, S.FAILED, S.ERROR, S.CANCELLED}),
    S.INPROGRESS: frozenset({S.SUCCEEDED, S.FAILED, S.ERROR, S.CANCELLED, S.BLOCKED}),
    S.BLOCKED: frozenset({S.INPROGRESS, S.SUCCEEDED, S.FAILED, S.ERROR, S.CANCELLED}),
    # A follow-up to a finished run re-opens it: same run, conversation carried forward.
    S.SUCCEEDED: frozenset({S.QUEUED}),
    S.FAILED: frozenset({S.QUEUED}),
    S.ERROR: frozenset({S.QUEUED}),
    S.CANCELLED: frozenset({S.QUEUED}),
}
UNCANCELLABLE_SOURCES = {
    RunSourceType.GITHUB_ACTION: "GitHub Actions runs cannot be cancelled with the API; cancel the workflow run.",
    RunSourceType.LOCAL: "Local agent runs cannot be cancelled with the API; cancel them where they run.",
}
TITLE_MAX = 80
ISO_DURATION = re.compile(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?")


class IllegalTransition(RuntimeError):
    """A bug: code asked for a state change the table does not allow."""


class StaleState(Exception):
    """The run was not in any of the states the caller expected (someone else moved it)."""

    def __init__(self, run_id: str, current: RunState) -> None:
        super().__init__(f"run {run_id} is {current}")
        self.run_id = run_id
        self.current = current


# --- reading -------------------------------------------------------------------------------


def run_from_row(row: RunRow) -> Run:
    return Run.model_validate(
        {
            **{
                c: getattr(row, c)
                for c in Run.model_fields
                if c not in ("metadata", "config", "origin") and hasattr(row, c)
            },
            "metadata": row.run_metadata or {},
            "config": row.config or {},
            "usage": row.usage or [],
            "origin": row.origin,
            "status_message": row.status_message,
        }
    )


def load_run(session: Session, run_id: str) -> Run:
    row = session.get(RunRow, run_id)
    if row is None:
        raise not_found("run", run_id)
    return run_from_row(row)


def visible_run(session: Session, principal: Principal, run_id: str) -> Run:
    """The run if the caller may see it: another team's run does not exist for them."""
    row = session.get(RunRow, run_id)
    if row is None or row.team_uid != principal.team_uid:
        raise not_found("run", run_id)
    if row.scope_type == "User" and row.creator_uid != principal.uid and not is_admin(session, principal):
        raise OzError(ErrorCode.NOT_AUTHORIZED, f"run {run_id} is personal to the person who created it")
    return run_from_row(row)


def latest_for_origin(session: Session, team_uid: str, key: str) -> Run | None:
    """The newest run started from one conversation (a Slack thread, a Linear session)."""
    row = session.scalar(
        select(RunRow)
        .where(RunRow.origin_key == key, RunRow.team_uid == team_uid)
        .order_by(RunRow.created_at.desc(), RunRow.run_id.desc())
        .limit(1)
    )
    return None if row is None else run_from_row(row)


def join_conversation(session: Session, run_id: str, key: str, ref: dict[str, str]) -> Run:
    """The run answers in another conversation of its surface from now on: later messages there
    find it (``key``) and its reporter writes there (``ref`` added to its coordinates).  A
    Linear mention's run, started from the ``Comment`` webhook, joined by the agent session
    Linear opened on the same comment."""
    row = session.get(RunRow, run_id)
    if row is None:
        raise not_found("run", run_id)
    row.origin = {**(row.origin or {}), "key": key, "ref": {**((row.origin or {}).get("ref") or {}), **ref}}
    row.origin_key = key
    session.flush()
    return run_from_row(row)


def active_runs_of(session: Session, creator_uid: str, source: RunSourceType) -> list[Run]:
    rows = session.scalars(
        select(RunRow).where(
            RunRow.creator_uid == creator_uid,
            RunRow.source == source.value,
            RunRow.state.in_([s.value for s in ACTIVE_STATES]),
        )
    )
    return [run_from_row(r) for r in rows]


def is_active(run: Run) -> bool:
    return run.state in ACTIVE_STATES


def is_cancellable_type(run: Run) -> bool:
    return run.source not in UNCANCELLABLE_SOURCES and run.execution_location != "LOCAL"


def run_time(run: Run, now: datetime | None = None) -> float:
    """Seconds of execution so far, counting the current execution if one is under way."""
    total = run.run_time_seconds
    if run.execution_started_at is not None and run.state in SANDBOX_STATES:
        total += ((now or utcnow()) - run.execution_started_at).total_seconds()
    return max(total, 0.0)


def iso_duration(seconds: float) -> str:
    """``PT2M30S``-style ISO 8601 duration, as the Oz API reports ``run_time``."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    if secs or not parts:
        parts += f"{secs}S"
    return "PT" + parts


def iso_seconds(duration: str) -> float:
    """The seconds in an :func:`iso_duration` (``PT1H2M3S``)."""
    match = ISO_DURATION.fullmatch(duration)
    if match is None:
        return 0.0
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


# --- state changes -------------------------------------------------------------------------


def set_status(
    session: Session,
    run_id: str,
    to: RunState,
    *,
    expected: frozenset[RunState] | set[RunState] | None = None,
    status_message: StatusMessage | None = None,
    prices: PriceTable | None = None,
    **changes: object,
) -> Run:
    """Move a run to ``to`` if it is in one of ``expected`` (default: any state allowed to).

    ``prices``: an execution that ends here has its container time costed in the same write,
    so the run is never seen finished with its cost still to come.

    Raises :class:`IllegalTransition` when no state in ``expected`` may move to ``to`` or
    the run's actual state may not, and :class:`StaleState` when the run is in a legal but
    unexpected state (a race lost).
    """
    sources = {s for s, targets in TRANSITIONS.items() if to in targets}
    if expected is not None:
        if not set(expected) <= sources:
            raise IllegalTransition(f"{sorted(set(expected) - sources)} -> {to} is not a legal transition")
        sources = set(expected)
    now = utcnow()
    values: dict[str, object] = {"state": to.value, "updated_at": now, **changes}
    if status_message is not None:
        values["status_message"] = status_message.wire()
    elif to == S.QUEUED:  # waiting again: the previous execution's outcome no longer describes it
        values.update(status_message=None, finished_at=None)
    result = session.execute(
        update(RunRow)
        .where(RunRow.run_id == run_id, RunRow.state.in_([s.value for s in sources]))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    row = session.get(RunRow, run_id, populate_existing=True)
    if row is None:
        raise not_found("run", run_id)
    if changed(result) != 1:
        current = RunState(row.state)
        if to not in TRANSITIONS[current] and expected is None:
            raise IllegalTransition(f"run {run_id}: {current} -> {to} is not a legal transition")
        raise StaleState(run_id, current)
    _account_for_time(row, to, now)
    if prices is not None and (to in TERMINAL_STATES or to == S.QUEUED):
        row.compute_cost_usd = prices.cost([], row.run_time_seconds or 0.0).compute_usd
    session.flush()
    log.info("run.status", run_id=run_id, state=to.value)
    return run_from_row(row)


def _account_for_time(row: RunRow, to: RunState, now: datetime) -> None:
    """Keep ``started_at`` and the accumulated run time in step with the new state (we hold the row)."""
    if to == S.CLAIMED:
        row.execution_started_at = now
    elif to == S.INPROGRESS and row.started_at is None:
        row.started_at = now
    if (to in TERMINAL_STATES or to == S.QUEUED) and row.execution_started_at is not None:
        row.run_time_seconds = (row.run_time_seconds or 0.0) + (now - row.execution_started_at).total_seconds()
        row.execution_started_at = None
    if to in TERMINAL_STATES:
        row.finished_at = now


def note_progress(session: Session, run_id: str, message: str) -> None:
    """Show the latest step on a working run (``status_message``) without changing its state."""
    session.execute(
        update(RunRow)
        .where(RunRow.run_id == run_id, RunRow.state == S.INPROGRESS.value)
        .values(status_message=StatusMessage(message=message).wire(), updated_at=utcnow())
    )


def record_usage(session: Session, run_id: str, usage: list[ModelUsage], prices: PriceTable) -> None:
    """Add what an execution's agent used to what the run has used so far, and price it."""
    if not usage:
        return
    row = session.get(RunRow, run_id)
    if row is None:
        raise not_found("run", run_id)
    so_far = [ModelUsage.model_validate(u) for u in row.usage or []]
    priced = prices.priced(add_usage(so_far, usage))
    row.usage = [u.model_dump(mode="json") for u in priced]
    row.inference_cost_usd = round(sum(u.priced_usd or 0.0 for u in priced), 6)


def record_cost(session: Session, run_id: str, prices: PriceTable, live_usage: Sequence[ModelUsage] = ()) -> Run:
    """Bring a run's cost up to now: its recorded usage and ``live_usage`` (what the executing
    agent reported so far, not yet recorded), and its container time so far."""
    row = session.get(RunRow, run_id)
    if row is None:
        raise not_found("run", run_id)
    run = run_from_row(row)
    cost = prices.cost(add_usage(run.usage, list(live_usage)), run_time(run))
    row.inference_cost_usd, row.compute_cost_usd = cost.inference_usd, cost.compute_usd
    session.flush()
    return run_from_row(row)


def queue_position(session: Session, run: Run) -> int | None:
    """A QUEUED run's place in line (1: the next to start), by when it entered the queue."""
    if run.state != S.QUEUED:
        return None
    ahead = session.scalar(
        select(func.count())
        .select_from(RunRow)
        .where(
            RunRow.state == S.QUEUED.value,
            (RunRow.updated_at < run.updated_at)
            | ((RunRow.updated_at == run.updated_at) & (RunRow.run_id < run.run_id)),
        )
    )
    return int(ahead or 0) + 1


def heartbeat(session: Session, run_id: str) -> None:
    session.execute(update(RunRow).where(RunRow.run_id == run_id).values(heartbeat_at=utcnow()))


def transition(
    store: Store,
    queue: RunQueue | None,
    run_id: str,
    to: RunState,
    *,
    expected: frozenset[RunState] | set[RunState] | None = None,
    status_message: StatusMessage | None = None,
    prices: PriceTable | None = None,
    **changes: Any,
) -> Run:
    """:func:`set_status` in its own transaction, committed, then announced.

    Save first, then announce: reporters and live streams re-read the store when told, so
    every state change any process makes shows in its thread within a render, not at the
    next sweep.  Raises as :func:`set_status` does.
    """
    with store.session() as session:
        run = set_status(
            session, run_id, to, expected=expected, status_message=status_message, prices=prices, **changes
        )
    if queue is not None:
        queue.announce(run_id, to.value)
    return run


def requeue(
    store: Store,
    queue: RunQueue | None,
    run_id: str,
    *,
    expected: frozenset[RunState] | set[RunState],
    **changes: Any,
) -> Run | None:
    """Put a run back in the queue (a retry, a worker that went away before the agent started,
    a follow-up re-opening a finished run): QUEUED, committed, announced, enqueued.  ``None``
    when the run had already left ``expected`` (a cancel won)."""
    try:
        run = transition(store, queue, run_id, S.QUEUED, expected=expected, **changes)
    except StaleState:
        return None
    if queue is not None:
        queue.enqueue(run_id)
    return run


def record_failure(
    store: Store, queue: RunQueue | None, run_id: str, error: OzError, prices: PriceTable | None = None
) -> Run | None:
    """End an active run FAILED or ERROR as the error's catalog entry says, and announce it.

    The one helper for every failure path (runner exceptions, container exits, sweeps), so
    the status message always carries the catalog code.  A run that already finished is
    left alone and ``None`` returned.
    """
    message = StatusMessage(message=error.message, error_code=error.code, retryable=error.retryable)
    to = RunState(error.run_state)
    try:
        return transition(store, queue, run_id, to, expected=_active_to(to), status_message=message, prices=prices)
    except StaleState as stale:
        log.info("run.failure_ignored", run_id=run_id, state=stale.current.value, error=error.code.value)
        return None


def _active_to(to: RunState) -> set[RunState]:
    return {s for s in ACTIVE_STATES if to in TRANSITIONS[s]}


# --- create --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Created:
    run: Run
    created: bool
    """False when the idempotency key matched an earlier run, which is returned instead."""
    enqueued: bool


def title_of(text: str, fallback: str = "Agent run") -> str:
    """A run's title from what a person wrote: its first non-empty line, cut at
    :data:`TITLE_MAX` characters with an ellipsis.  Every surface titles its runs so."""
    first = next((line.strip() for line in (text or "").splitlines() if line.strip()), "") or fallback
    return first if len(first) <= TITLE_MAX else first[: TITLE_MAX - 1].rstrip() + "…"


def _title(request: RunAgentRequest, skill_name: str | None) -> str:
    if request.title and request.title.strip():
        return request.title.strip()
    return title_of(request.prompt or "", f"Run skill {skill_name}" if skill_name else "Agent run")


def _decode_attachments(request: RunAgentRequest) -> list[tuple[str, str, bytes]]:
    decoded = []
    for attachment in request.attachments or []:
        try:
            data = base64.b64decode(attachment.data, validate=True)
        except (binascii.Error, ValueError):
            raise invalid(f"attachment {attachment.file_name!r} is not valid base64") from None
        decoded.append((attachment.file_name, attachment.mime_type, data))
    return decoded


@dataclass(frozen=True)
class _Actors:
    creator_kind: str
    creator_uid: str
    executor_kind: str
    executor_uid: str
    agent_uid: str | None


def _resolve_actors(
    session: Session, principal: Principal, request: RunAgentRequest, team_owned: bool, agent_limit: int
) -> _Actors:
    """Who the run is by (creator) and who executes it (executor), per the reference's rules."""
    if principal.is_human:
        if request.on_behalf_of:
            raise OzError(ErrorCode.NOT_AUTHORIZED, "on_behalf_of may only be used with an agent API key")
        if request.agent_identity_uid:
            if not team_owned:
                raise invalid("agent_identity_uid is only valid for team-owned runs")
            agent = get_agent(session, principal.team_uid, request.agent_identity_uid, agent_limit)
            _require_available(agent.available, agent.name)
            return _Actors("user", principal.uid, "service_account", agent.uid, agent.uid)
        return _Actors("user", principal.uid, "user", principal.uid, None)
    agent = get_agent(session, principal.team_uid, principal.uid, agent_limit)
    _require_available(agent.available, agent.name)
    if request.agent_identity_uid and request.agent_identity_uid != agent.uid:
        raise OzError(ErrorCode.NOT_AUTHORIZED, "an agent API key can only start runs as its own cloud agent")
    if not team_owned:
        raise invalid("runs started with an agent API key are always team-owned; omit team or set it to true")
    creator = ("service_account", agent.uid)
    if request.on_behalf_of:
        if not principal.on_behalf_of_enabled:
            raise OzError(ErrorCode.NOT_AUTHORIZED, f"cloud agent {agent.name!r} is not allowed to use on_behalf_of")
        target = request.on_behalf_of.strip().lower()
        person = session.scalar(
            select(AccountRow).where(
                AccountRow.team_uid == principal.team_uid, (AccountRow.email == target) | (AccountRow.uid == target)
            )
        )
        if person is None:
            raise invalid(f"on_behalf_of: {request.on_behalf_of} is not a member of the run's team")
        creator = ("user", person.uid)
    return _Actors(creator[0], creator[1], "service_account", agent.uid, agent.uid)


def _require_available(available: bool, name: str) -> None:
    if not available:
        raise OzError(ErrorCode.FEATURE_NOT_AVAILABLE, f"cloud agent {name!r} is over the team's plan limit")


def _environment_id(
    session: Session, principal: Principal, config: AmbientAgentConfig, agent: AgentIdentity | None
) -> str | None:
    env_id = config.environment_id
    if env_id is None and agent is not None:
        env_id = agent.environment_id
    if env_id:
        env = session.get(EnvironmentRow, env_id)
        if env is None or env.team_uid != principal.team_uid or env.deleted_at is not None:
            raise not_found("environment", env_id)
    return env_id or None


def with_agent_defaults(config: AmbientAgentConfig, agent: AgentIdentity) -> AmbientAgentConfig:
    """What a cloud agent brings to its runs where the run says nothing: its harness, its first
    skill, and its prompt before the run's base prompt.  (Its environment, model, secrets and
    MCP servers are taken where they are used.)"""
    changes: dict = {}
    harness = agent.settings.get("harness") or ({"type": agent.base_harness} if agent.base_harness else None)
    if harness and not (config.harness and config.harness.type):
        given = config.harness.model_dump(exclude_none=True) if config.harness else {}
        changes["harness"] = Harness.model_validate({**harness, **given})
    agent_skills = agent.settings.get("skills") or []
    if agent_skills and not (config.skill_spec or config.skills):
        changes["skill_spec"] = agent_skills[0]
    if agent.prompt:
        prompts = (agent.prompt.strip(), (config.base_prompt or "").strip())
        changes["base_prompt"] = "\n\n".join(p for p in prompts if p)
    return config.model_copy(update=changes) if changes else config


def _prepare(
    session: Session,
    principal: Principal,
    request: RunAgentRequest,
    *,
    source: RunSourceType,
    origin: Origin | None,
    idempotency_key: str | None,
    auto_metadata: dict[str, str],
    vault: Vault | None,
    agent_limit: int,
    schedule_uid: str | None = None,
) -> tuple[RunRow, list[tuple[str, str, bytes]]]:
    team_owned = request.team is not False
    actors = _resolve_actors(session, principal, request, team_owned, agent_limit)
    config = request.config or AmbientAgentConfig()
    if request.skill:
        config = config.model_copy(update={"skill_spec": request.skill, "skills": None})
    agent = get_agent(session, principal.team_uid, actors.agent_uid, agent_limit) if actors.agent_uid else None
    if agent is not None:
        config = with_agent_defaults(config, agent)
    skill_spec = config.skill_spec or (config.skills[0] if config.skills else None)
    if skill_spec:
        skills.parse(skill_spec)  # a malformed spec is the caller's to fix, now
    refuse_unsupported(config)
    env_id = _environment_id(session, principal, config, agent)
    config = config.model_copy(update={"environment_id": env_id})
    model_id = config.model_id or (agent.base_model if agent else None)
    name = config.name or skills.skill_name(skill_spec)
    config = config.model_copy(update={"model_id": model_id, "name": name})
    check_usable(config.mcp_servers)
    if config.mcp_servers and vault is not None:  # without one, only sealed credentials (an integration's)
        sealed = seal(config.mcp_servers, vault) or {}
        config = config.model_copy(update={"mcp_servers": {n: McpServerConfig(**d) for n, d in sealed.items()}})

    metadata = dict(auto_metadata)
    if request.parent_run_id:
        parent = session.get(RunRow, request.parent_run_id)
        if parent is None or parent.team_uid != principal.team_uid:
            raise invalid(f"parent_run_id {request.parent_run_id} does not name a run you can see")
        metadata.update(parent.run_metadata or {})
    metadata.update(request.metadata or {})
    if len(metadata) > 20:
        raise invalid("the run's merged metadata (inherited and explicit keys) has more than 20 keys")

    conversation_id = request.conversation_id
    if conversation_id:
        known = session.scalar(
            select(RunRow.run_id)
            .where(RunRow.team_uid == principal.team_uid, RunRow.conversation_id == conversation_id)
            .limit(1)
        )
        if known is None:
            raise not_found("conversation", conversation_id)
    billed = budgets.billed_to(principal, source)
    budgets.require_room(session, principal.team_uid, billed)
    run_id = new_run_id()
    now = utcnow()
    origin = origin or Origin(source=source)
    row = RunRow(
        run_id=run_id,
        team_uid=principal.team_uid,
        scope_type="Team" if team_owned else "User",
        title=_title(request, name),
        prompt=request.prompt or "",
        state=S.QUEUED.value,
        source=source.value,
        creator_kind=actors.creator_kind,
        creator_uid=actors.creator_uid,
        executor_kind=actors.executor_kind,
        executor_uid=actors.executor_uid,
        agent_uid=actors.agent_uid,
        environment_id=env_id,
        config_name=name,
        model_id=model_id,
        skill_spec=skill_spec,
        skill_sort=("0" + skill_spec) if skill_spec else "1",
        config=config.model_dump(mode="json", exclude_none=True),
        run_metadata=metadata,
        conversation_id=conversation_id or new_run_id(),
        parent_run_id=request.parent_run_id,
        mode=request.mode or "normal",
        interactive=bool(request.interactive),
        idempotency_key=idempotency_key,
        origin=origin.model_dump(mode="json"),
        trigger_url=origin.trigger_url,
        origin_key=origin.key,
        execution_location="REMOTE",
        attempt=0,
        run_time_seconds=0.0,
        billed_to=billed,
        inference_cost_usd=0.0,
        compute_cost_usd=0.0,
        schedule_uid=schedule_uid,
        worker_host="",
        created_at=now,
        updated_at=now,
    )
    return row, _decode_attachments(request)


def create(
    store: Store,
    queue: RunQueue | None,
    principal: Principal,
    request: RunAgentRequest,
    *,
    source: RunSourceType = RunSourceType.API,
    origin: Origin | None = None,
    idempotency_key: str | None = None,
    auto_metadata: dict[str, str] | None = None,
    vault: Vault | None = None,
    files: list[tuple[str, str, bytes]] | None = None,
    agent_limit: int,
    schedule_uid: str | None = None,
) -> Created:
    """Validate, persist as QUEUED, commit, then enqueue — the single way a run comes to be.

    The commit comes first so an accepted run survives a Redis outage (the sweeper
    enqueues it later).  The same idempotency key within a team returns the same run.
    ``vault`` seals the config's MCP credentials (needed when it has some; those an
    integration or cloud agent contributed are sealed already).  ``files``: (name, MIME type,
    bytes) a surface brought beside the request's own attachments (a Slack thread's files).
    ``agent_limit``: the plan's cloud agents (``OZGW_AGENT_LIMIT``); one past it cannot run.
    A run whose budgets are spent is refused here (``core/budgets.py``).
    """
    if idempotency_key is not None and not 0 < len(idempotency_key) <= 255:
        raise invalid("Idempotency-Key must be 1-255 characters")
    if idempotency_key:
        existing = by_idempotency_key(store, principal.team_uid, idempotency_key)
        if existing is not None:
            return Created(existing, created=False, enqueued=True)
    # Everything that only reads (who, which agent and environment, budgets, the conversation)
    # happens before the write transaction: on SQLite that one holds the single writer's lock,
    # so it is kept to the inserts and the commit.
    with store.reader() as session:
        row, attachments = _prepare(
            session,
            principal,
            request,
            source=source,
            origin=origin,
            idempotency_key=idempotency_key,
            auto_metadata=auto_metadata or {},
            vault=vault,
            agent_limit=agent_limit,
            schedule_uid=schedule_uid,
        )
    try:
        with store.session() as session:
            # Core inserts on the tables, the values as parameters: the hot path of the API.  The
            # statement compiles once (values inlined with ``.values()`` made each insert a new
            # statement to key and compile) and nothing here needs the unit of work.
            connection = session.connection()
            connection.execute(insert(RUNS_TABLE), [_columns(row)])
            if row.run_metadata:
                connection.execute(
                    insert(METADATA_TABLE),
                    [{"run_id": row.run_id, "key": k, "value": v} for k, v in row.run_metadata.items()],
                )
            attachments = [*attachments, *(files or [])]
            if attachments:
                session.execute(
                    insert(RunAttachmentRow),
                    [{"run_id": row.run_id, "file_name": n, "mime_type": m, "data": d} for n, m, d in attachments],
                )
            run = run_from_row(row)
    except IntegrityError:
        # Two creates with one key raced; the other committed first.
        existing = by_idempotency_key(store, principal.team_uid, idempotency_key) if idempotency_key else None
        if existing is None:
            raise
        return Created(existing, created=False, enqueued=True)
    log.info("run.created", run_id=run.run_id, source=source.value, team=principal.team_uid)
    enqueued = queue.enqueue(run.run_id) if queue is not None else False
    return Created(run, created=True, enqueued=enqueued)


def _columns(row: RunRow) -> dict[str, Any]:
    """The row's values by column name (``metadata`` is ``run_metadata`` on the class)."""
    return {column.name: getattr(row, attribute.key) for attribute in _ATTRIBUTES for column in attribute.columns}


_ATTRIBUTES = tuple(RunRow.__mapper__.column_attrs)
RUNS_TABLE = cast(Table, RunRow.__table__)
METADATA_TABLE = cast(Table, RunMetadataRow.__table__)


def by_idempotency_key(store: Store, team_uid: str, key: str) -> Run | None:
    with store.session() as session:
        row = session.scalar(select(RunRow).where(RunRow.team_uid == team_uid, RunRow.idempotency_key == key))
        return None if row is None else run_from_row(row)


# --- cancel and follow-up ----------------------------------------------------------------------


def cancel(store: Store, queue: RunQueue | None, principal: Principal, run_id: str) -> Run:
    """Cancel a queued or running run, with the reference's 400 / 409 / 422 refusals."""
    who = principal.email or principal.display_name or principal.uid
    with store.reader() as session:
        run = visible_run(session, principal, run_id)
        require_steer(session, principal, run, "cancel")
    if not is_cancellable_type(run):
        raise OzError(
            ErrorCode.OPERATION_NOT_SUPPORTED,
            title=UNCANCELLABLE_SOURCES.get(run.source, "This run cannot be cancelled with the API."),
        )
    try:
        run = transition(
            store,
            queue,
            run_id,
            S.CANCELLED,
            expected={S.QUEUED, S.CLAIMED, S.INPROGRESS},
            status_message=StatusMessage(message=f"Cancelled by {who}"),
        )
    except StaleState as stale:
        raise _cancel_refusal(run_id, stale.current) from None
    if queue is not None:
        queue.cancel(run_id)
    return run


def _cancel_refusal(run_id: str, state: RunState) -> OzError:
    if state == S.PENDING:
        return OzError(ErrorCode.CONFLICT, title="Pending agent runs cannot be cancelled, retry after a moment.")
    return invalid(f"run {run_id} is {state.value}; only queued or running runs can be cancelled")


def followup(store: Store, queue: RunQueue | None, principal: Principal, run_id: str, request: FollowupRequest) -> Run:
    """Accept a follow-up message: kept for an active run, or re-opening a finished one."""
    with store.session() as session:
        run = visible_run(session, principal, run_id)
        require_steer(session, principal, run, "follow up on")
        session.add(
            RunFollowupRow(
                run_id=run_id,
                message=request.message,
                mode=request.mode or "normal",
                author_uid=principal.uid,
                created_at=utcnow(),
            )
        )
    if run.state in TERMINAL_STATES:
        # Re-opened; if it became active again meanwhile, the message waits for that execution.
        run = requeue(store, queue, run_id, expected=TERMINAL_STATES, attempt=run.attempt + 1) or run
    return run


def pending_followups(session: Session, run_id: str) -> list[RunFollowupRow]:
    return list(
        session.scalars(
            select(RunFollowupRow)
            .where(RunFollowupRow.run_id == run_id, RunFollowupRow.delivered_at.is_(None))
            .order_by(RunFollowupRow.id)
        )
    )


def take_followups(session: Session, run_id: str) -> list[str]:
    """The follow-up messages not yet given to an execution, marked as given now."""
    rows = pending_followups(session, run_id)
    now = utcnow()
    for row in rows:
        row.delivered_at = now
    return [row.message for row in rows]
