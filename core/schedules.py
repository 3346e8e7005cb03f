"""Scheduled agents: cron schedules that start a run each time they fire.

Cron expressions are evaluated by cronsim in the schedule's time zone, so daylight saving
time follows Debian cron's rules (a time skipped in spring fires right after the jump; a
time repeated in autumn fires once).

**Exactly once.** Every fire time is claimed in the store before its run is created: a row
keyed by (schedule, fire time), so of several scheduler processes firing at once only the
one whose insert succeeds goes on.  The run is created with an idempotency key made of the
same pair, so a scheduler that dies between the claim and the run is finished by the next
tick without a second run.

**Catch-up.** A scheduler that was down fires each schedule once for the latest time it
missed, never once per missed time, and moves on to the next time after now.

**Pausing itself.** A schedule whose last ``pause_after`` fires all failed for a reason only
its configuration can fix (its environment deleted, its agent gone, a setting refused) pauses
itself and says why; ``resume`` clears that once it is fixed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from cronsim import CronSim, CronSimError
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import and_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import runs
from core.accounts import is_live
from core.agents import get_agent
from core.errors import ErrorCode, OzError, invalid, not_found
from core.identity import principal_of
from core.ids import new_uid
from core.models import Account, Origin, Principal, RunSourceType, RunState, StatusMessage
from core.models.wire import AmbientAgentConfig, RunAgentRequest, WireModel
from core.permissions import is_admin
from core.queue import RunQueue
from core.skills import parse as parse_skill
from core.store import Store, changed, utcnow
from core.store.tables import AccountRow, EnvironmentRow, RunRow, ScheduleFireRow, ScheduleRow

log = structlog.get_logger(__name__)

CONFIGURATION_ERRORS = frozenset(
    {
        ErrorCode.RESOURCE_NOT_FOUND,
        ErrorCode.INTEGRATION_DISABLED,
        ErrorCode.INTEGRATION_NOT_CONFIGURED,
        ErrorCode.FEATURE_NOT_AVAILABLE,
        ErrorCode.NOT_AUTHORIZED,
        ErrorCode.INVALID_REQUEST,
        ErrorCode.EXTERNAL_AUTHENTICATION_REQUIRED,
        ErrorCode.ENVIRONMENT_SETUP_FAILED,
    }
)
"""Failures a schedule's next fire would meet again unless someone changes its configuration
(a spent budget renews and a busy platform recovers: those never pause a schedule)."""
UNFINISHED_AFTER = timedelta(seconds=60)
"""A claimed fire with neither a run nor an error this long was left by a scheduler that died."""
MAX_STEPS = 600_000
"""Cron times walked at most when catching up (a minutely schedule over a year of downtime)."""


# --- the wire -----------------------------------------------------------------------------


class ScheduleFields(BaseModel):
    """What a schedule says; every field optional so an update names only what changes."""

    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    cron: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    timezone: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    prompt: Annotated[str, Field(min_length=1)] | None = None
    skill: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    environment_id: str | None = None
    agent_uid: str | None = None
    model_id: str | None = None


class ScheduleCreate(ScheduleFields):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    cron: Annotated[str, Field(min_length=1, max_length=200)]
    environment_id: str

    @model_validator(mode="after")
    def _one_instruction(self) -> ScheduleCreate:
        if bool(self.prompt) == bool(self.skill):
            raise ValueError("give a prompt or a skill, not both")
        return self


class ScheduleUpdate(ScheduleFields):
    pass


class LastRun(WireModel):
    fire_time: datetime
    run_id: str | None = None
    state: RunState | None = None
    error: str | None = None


class ScheduleItem(WireModel):
    uid: str
    name: str
    cron: str
    timezone: str
    prompt: str | None = None
    skill: str | None = None
    environment_id: str
    agent_uid: str | None = None
    model_id: str | None = None
    creator_uid: str
    status: Literal["active", "paused"]
    paused_reason: str | None = None
    next_fire_at: datetime | None = None
    """When it fires next (``None`` while paused)."""
    last_run: LastRun | None = None
    created_at: datetime
    updated_at: datetime


class ListSchedulesResponse(WireModel):
    schedules: list[ScheduleItem]


# --- cron -----------------------------------------------------------------------------------


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise invalid(f"unknown time zone {name!r}; use an IANA name such as Europe/Paris or UTC") from None


def fire_times(cron: str, timezone: str, after: datetime) -> Iterable[datetime]:
    """The schedule's fire times strictly after ``after``, in UTC."""
    try:
        times = CronSim(cron, after.astimezone(zone(timezone)))
    except CronSimError as exc:
        raise invalid(f"cron expression {cron!r} is not valid: {exc}") from None
    return (t.astimezone(UTC) for t in times)


def next_fire(cron: str, timezone: str, after: datetime) -> datetime:
    try:
        return next(iter(fire_times(cron, timezone, after)))
    except StopIteration:
        raise invalid(f"cron expression {cron!r} never fires") from None


def latest_fire(cron: str, timezone: str, since: datetime, now: datetime) -> datetime | None:
    """The last fire time in ``(since - 1 s, now]``: what a catch-up fires once."""
    latest = None
    for steps, when in enumerate(fire_times(cron, timezone, since - timedelta(seconds=1))):
        if when > now or steps >= MAX_STEPS:
            break
        latest = when
    return latest


# --- managing ---------------------------------------------------------------------------------


def _row(session: Session, principal: Principal, uid: str) -> ScheduleRow:
    row = session.get(ScheduleRow, uid)
    if row is None or row.team_uid != principal.team_uid or row.deleted_at is not None:
        raise not_found("schedule", uid)
    return row


def _may_change(session: Session, principal: Principal, row: ScheduleRow) -> None:
    if principal.uid != row.creator_uid and not is_admin(session, principal):
        raise OzError(ErrorCode.NOT_AUTHORIZED, "only the schedule's creator or a team admin can change it")


def _check(session: Session, principal: Principal, row: ScheduleRow, agent_limit: int) -> None:
    """Refuse what could never fire: a bad cron or zone, a missing environment or agent, a bad skill."""
    next_fire(row.cron, row.timezone, utcnow())
    env = session.get(EnvironmentRow, row.environment_id)
    if env is None or env.team_uid != principal.team_uid or env.deleted_at is not None:
        raise not_found("environment", row.environment_id)
    if row.agent_uid:
        get_agent(session, principal.team_uid, row.agent_uid, agent_limit)
    if row.skill_spec:
        parse_skill(row.skill_spec)


def create(session: Session, principal: Principal, spec: ScheduleCreate, agent_limit: int) -> ScheduleItem:
    if not principal.is_human:
        raise OzError(ErrorCode.NOT_AUTHORIZED, "schedules are created by people; give the schedule an agent instead")
    now = utcnow()
    row = ScheduleRow(
        uid=new_uid(),
        team_uid=principal.team_uid,
        name=spec.name,
        cron=spec.cron.strip(),
        timezone=spec.timezone or "UTC",
        prompt=spec.prompt,
        skill_spec=spec.skill,
        environment_id=spec.environment_id,
        agent_uid=spec.agent_uid,
        model_id=spec.model_id,
        creator_uid=principal.uid,
        paused=False,
        created_at=now,
        updated_at=now,
    )
    _check(session, principal, row, agent_limit)
    row.next_fire_at = next_fire(row.cron, row.timezone, now)
    session.add(row)
    session.flush()
    return _item(session, row)


def update_schedule(
    session: Session, principal: Principal, uid: str, changes: ScheduleUpdate, agent_limit: int
) -> ScheduleItem:
    row = _row(session, principal, uid)
    _may_change(session, principal, row)
    given = changes.model_dump(exclude_unset=True)
    if given.get("prompt"):  # one instruction: a new prompt replaces the skill, and the other way round
        row.skill_spec = None
    if "skill" in given:
        given["skill_spec"] = given.pop("skill")
        if given["skill_spec"]:
            row.prompt = None
    for column, value in given.items():
        if column in ("name", "cron", "timezone", "environment_id") and value is None:
            raise invalid(f"{column} cannot be removed")
        setattr(row, column, value.strip() if column == "cron" else value)
    if not (row.prompt or row.skill_spec):
        raise invalid("a schedule needs a prompt or a skill")
    _check(session, principal, row, agent_limit)
    row.updated_at = utcnow()
    row.next_fire_at = next_fire(row.cron, row.timezone, row.updated_at)
    session.flush()
    return _item(session, row)


def set_paused(session: Session, principal: Principal, uid: str, paused: bool, agent_limit: int) -> ScheduleItem:
    """Pause, or resume from now on (no catch-up for what the pause skipped)."""
    row = _row(session, principal, uid)
    _may_change(session, principal, row)
    if not paused:
        _check(session, principal, row, agent_limit)
        row.next_fire_at = next_fire(row.cron, row.timezone, utcnow())
    row.paused, row.paused_reason, row.updated_at = paused, None, utcnow()
    session.flush()
    return _item(session, row)


def delete(session: Session, principal: Principal, uid: str) -> None:
    row = _row(session, principal, uid)
    _may_change(session, principal, row)
    row.deleted_at = row.updated_at = utcnow()


def get(session: Session, principal: Principal, uid: str) -> ScheduleItem:
    return _item(session, _row(session, principal, uid))


def list_schedules(session: Session, principal: Principal) -> ListSchedulesResponse:
    rows = session.scalars(
        select(ScheduleRow)
        .where(ScheduleRow.team_uid == principal.team_uid, ScheduleRow.deleted_at.is_(None))
        .order_by(ScheduleRow.name, ScheduleRow.uid)
    )
    return ListSchedulesResponse(schedules=[_item(session, row) for row in rows])


def _item(session: Session, row: ScheduleRow) -> ScheduleItem:
    last = session.execute(
        select(ScheduleFireRow, RunRow.state)
        .outerjoin(RunRow, RunRow.run_id == ScheduleFireRow.run_id)
        .where(ScheduleFireRow.schedule_uid == row.uid)
        .order_by(ScheduleFireRow.fire_time.desc())
        .limit(1)
    ).first()
    last_run = None
    if last is not None:
        fire, state = last
        last_run = LastRun(fire_time=fire.fire_time, run_id=fire.run_id, state=state, error=fire.error)
    return ScheduleItem(
        uid=row.uid,
        name=row.name,
        cron=row.cron,
        timezone=row.timezone,
        prompt=row.prompt,
        skill=row.skill_spec,
        environment_id=row.environment_id,
        agent_uid=row.agent_uid,
        model_id=row.model_id,
        creator_uid=row.creator_uid,
        status="paused" if row.paused else "active",
        paused_reason=row.paused_reason,
        next_fire_at=None if row.paused else row.next_fire_at,
        last_run=last_run,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


# --- firing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fired:
    schedule_uid: str
    fire_time: datetime
    run_id: str | None
    error: OzError | None = None


def fire_due(
    store: Store, queue: RunQueue | None, *, agent_limit: int, pause_after: int, now: datetime | None = None
) -> list[Fired]:
    """Fire every schedule that is due, once each (the scheduler's tick).  Safe to call from
    several processes at once: each fire time is started by exactly one of them."""
    now = now or utcnow()
    fired: list[Fired] = []
    for schedule, claimed in _unfinished(store, utcnow()):  # claims are stamped by the wall clock
        log.warning("schedule.finishing_fire", schedule=schedule.uid, fire_time=claimed.isoformat())
        fired.append(_start(store, queue, schedule, claimed, agent_limit, pause_after))
    with store.reader() as session:
        due = session.scalars(
            select(ScheduleRow).where(
                ScheduleRow.paused.is_(False), ScheduleRow.deleted_at.is_(None), ScheduleRow.next_fire_at <= now
            )
        ).all()
        session.expunge_all()
    for schedule in due:
        fire_time = _claim(store, schedule, now)
        if fire_time is not None:
            fired.append(_start(store, queue, schedule, fire_time, agent_limit, pause_after))
    return fired


def _claim(store: Store, schedule: ScheduleRow, now: datetime) -> datetime | None:
    """Take the latest due fire time and move the schedule past now, in one transaction: the
    fire's primary key lets one scheduler in, the next-fire compare-and-set keeps a slower one
    from firing the schedule again for the same moment."""
    fire_time = latest_fire(schedule.cron, schedule.timezone, schedule.next_fire_at, now)
    if fire_time is None:
        return None
    try:
        with store.session() as session:
            moved = session.execute(
                update(ScheduleRow)
                .where(ScheduleRow.uid == schedule.uid, ScheduleRow.next_fire_at == schedule.next_fire_at)
                .values(next_fire_at=next_fire(schedule.cron, schedule.timezone, now))
            )
            if changed(moved) != 1:
                session.rollback()
                return None
            session.add(ScheduleFireRow(schedule_uid=schedule.uid, fire_time=fire_time, claimed_at=utcnow()))
            session.flush()
    except IntegrityError:
        return None  # another scheduler took this fire time
    return fire_time


def _unfinished(store: Store, now: datetime) -> list[tuple[ScheduleRow, datetime]]:
    with store.reader() as session:
        rows = session.execute(
            select(ScheduleRow, ScheduleFireRow.fire_time)
            .join(ScheduleFireRow, ScheduleFireRow.schedule_uid == ScheduleRow.uid)
            .where(
                ScheduleFireRow.run_id.is_(None),
                ScheduleFireRow.error_code.is_(None),
                ScheduleFireRow.claimed_at < now - UNFINISHED_AFTER,
                ScheduleRow.deleted_at.is_(None),
            )
        ).all()
        session.expunge_all()
        return [(schedule, fire_time) for schedule, fire_time in rows]


def _principal(session: Session, schedule: ScheduleRow, agent_limit: int) -> Principal:
    """The schedule's cloud agent when it has one, else the person who created it."""
    if schedule.agent_uid:
        agent = get_agent(session, schedule.team_uid, schedule.agent_uid, agent_limit)
        return Principal(kind="service_account", uid=agent.uid, team_uid=schedule.team_uid, display_name=agent.name)
    person = session.get(AccountRow, schedule.creator_uid)
    if person is None or not is_live(session, person.uid) or person.team_uid != schedule.team_uid:
        raise OzError(
            ErrorCode.NOT_AUTHORIZED,
            "the schedule's creator is no longer on the team; give it a cloud agent (`schedule update --agent`)",
        )
    return principal_of(Account.model_validate(person))


def fire_key(schedule_uid: str, fire_time: datetime) -> str:
    return f"schedule:{schedule_uid}:{fire_time.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"


def _start(
    store: Store,
    queue: RunQueue | None,
    schedule: ScheduleRow,
    fire_time: datetime,
    agent_limit: int,
    pause_after: int,
) -> Fired:
    """Create the fire's run (or record why not), then pause the schedule if it keeps failing."""
    request = RunAgentRequest(
        prompt=schedule.prompt,
        skill=schedule.skill_spec,
        title=schedule.name,
        team=True,
        config=AmbientAgentConfig(environment_id=schedule.environment_id, model_id=schedule.model_id),
    )
    try:
        with store.reader() as session:
            principal = _principal(session, schedule, agent_limit)
        created = runs.create(
            store,
            queue,
            principal,
            request,
            source=RunSourceType.SCHEDULED_AGENT,
            origin=Origin(source=RunSourceType.SCHEDULED_AGENT, key=f"schedule:{schedule.uid}"),
            idempotency_key=fire_key(schedule.uid, fire_time),
            auto_metadata={"schedule": schedule.uid},
            agent_limit=agent_limit,
            schedule_uid=schedule.uid,
        )
    except OzError as error:
        _record_fire(store, schedule.uid, fire_time, error=error)
        log.warning("schedule.fire_refused", schedule=schedule.uid, code=error.code.value, error=error.message)
        pause_if_failing(store, schedule.uid, pause_after)
        return Fired(schedule.uid, fire_time, None, error)
    _record_fire(store, schedule.uid, fire_time, run_id=created.run.run_id)
    log.info("schedule.fired", schedule=schedule.uid, fire_time=fire_time.isoformat(), run_id=created.run.run_id)
    return Fired(schedule.uid, fire_time, created.run.run_id)


def _record_fire(
    store: Store, schedule_uid: str, fire_time: datetime, *, run_id: str | None = None, error: OzError | None = None
) -> None:
    with store.session() as session:
        row = session.get(ScheduleFireRow, (schedule_uid, fire_time))
        if row is None:
            return
        row.run_id = run_id
        if error is not None:
            row.error_code, row.error = error.code.value, error.message[:1000]


def _configuration_failure(error_code: str | None, run_state: str | None, status: dict | None) -> str | None:
    """Why a fire failed, when only its configuration can fix it; ``None`` otherwise."""
    if error_code is not None:
        return error_code if ErrorCode(error_code) in CONFIGURATION_ERRORS else None
    if run_state not in (RunState.FAILED.value, RunState.ERROR.value) or not status:
        return None
    message = StatusMessage.model_validate(status)
    code = message.error_code
    return code.value if code is not None and code in CONFIGURATION_ERRORS else None


def pause_if_failing(store: Store, schedule_uid: str, pause_after: int) -> bool:
    """Pause the schedule when its last ``pause_after`` fires all failed for a configuration
    reason; the reason says what the last one met."""
    with store.session() as session:
        last = session.execute(
            select(ScheduleFireRow, RunRow.state, RunRow.status_message)
            .outerjoin(RunRow, RunRow.run_id == ScheduleFireRow.run_id)
            .where(ScheduleFireRow.schedule_uid == schedule_uid)
            .order_by(ScheduleFireRow.fire_time.desc())
            .limit(pause_after)
        ).all()
        failures = [(fire, _configuration_failure(fire.error_code, state, status)) for fire, state, status in last]
        failures = [(fire, code) for fire, code in failures if code]
        if len(last) < pause_after or len(failures) < pause_after:
            return False
        latest, code = failures[0]
        detail = latest.error or (f"its run {latest.run_id} failed" if latest.run_id else "it failed")
        reason = f"Paused after {pause_after} failed runs in a row ({code}): {detail}"
        paused = session.execute(
            update(ScheduleRow)
            .where(and_(ScheduleRow.uid == schedule_uid, ScheduleRow.paused.is_(False)))
            .values(paused=True, paused_reason=reason[:1000], updated_at=utcnow())
        )
        if changed(paused):
            log.warning("schedule.paused", schedule=schedule_uid, code=code)
        return True


def pause_failing(store: Store, pause_after: int, since: timedelta = timedelta(hours=1)) -> None:
    """Look at schedules whose runs ended lately: one that failed for its configuration
    ``pause_after`` times in a row is paused now, not at its next fire."""
    with store.reader() as session:
        uids = session.scalars(
            select(RunRow.schedule_uid)
            .join(ScheduleRow, ScheduleRow.uid == RunRow.schedule_uid)
            .where(
                RunRow.schedule_uid.is_not(None),
                RunRow.finished_at >= utcnow() - since,
                RunRow.state.in_([RunState.FAILED.value, RunState.ERROR.value]),
                ScheduleRow.paused.is_(False),
            )
            .distinct()
        ).all()
    for uid in uids:
        if uid:
            pause_if_failing(store, uid, pause_after)
