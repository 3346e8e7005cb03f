"""Scheduled agents on both stores: exactly one run per fire time with schedulers racing, one
catch-up run after downtime, daylight saving time, and a schedule that pauses itself."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from core import runs, schedules
from core.accounts import create_account
from core.agents import create_agent
from core.environments import create_environment, delete_environment
from core.errors import ErrorCode, OzError
from core.models import Principal, RunSourceType, RunState
from core.models.wire import AgentCreateRequest
from core.schedules import ScheduleCreate, ScheduleUpdate
from core.store import Store, utcnow
from core.store.tables import RunRow, ScheduleFireRow, ScheduleRow
from tests.support.people import AGENT_LIMIT

PAUSE_AFTER = 3


def person(store: Store, email: str = "sam@example.com") -> Principal:
    with store.session() as session:
        account = create_account(session, email, "acme")
        return Principal(kind="user", uid=account.uid, team_uid=account.team_uid, email=account.email)


def environment(store: Store, who: Principal) -> str:
    with store.session() as session:
        return create_environment(session, who, name="nightly", docker_image="debian:12").uid


def make_schedule(store: Store, who: Principal, env_id: str, **fields: object) -> str:
    spec = ScheduleCreate.model_validate(
        {"name": "Nightly triage", "cron": "*/5 * * * *", "prompt": "Triage new issues", "environment_id": env_id}
        | fields
    )
    with store.session() as session:
        return schedules.create(session, who, spec, AGENT_LIMIT).uid


def fire(store: Store, now: datetime) -> list[schedules.Fired]:
    return schedules.fire_due(store, None, agent_limit=AGENT_LIMIT, pause_after=PAUSE_AFTER, now=now)


def runs_of(store: Store, uid: str) -> list[RunRow]:
    with store.reader() as session:
        rows = session.scalars(select(RunRow).where(RunRow.schedule_uid == uid).order_by(RunRow.created_at)).all()
        session.expunge_all()
        return list(rows)


def due_at(store: Store, uid: str) -> datetime:
    with store.reader() as session:
        row = session.get(ScheduleRow, uid)
        assert row is not None
        return row.next_fire_at


def test_two_schedulers_racing_start_exactly_one_run_per_fire_time(store: Store, database_url: str):
    who = person(store)
    uid = make_schedule(store, who, environment(store, who))
    rounds = 8
    other = Store(database_url)  # a second scheduler process: its own engine and connections
    started: list[schedules.Fired] = []
    try:
        for _ in range(rounds):
            now = due_at(store, uid) + timedelta(seconds=1)
            barrier = threading.Barrier(2)

            def scheduler(s: Store, now: datetime = now, barrier: threading.Barrier = barrier) -> None:
                barrier.wait()
                started.extend(fire(s, now))

            threads = [threading.Thread(target=scheduler, args=(s,)) for s in (store, other)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
    finally:
        other.dispose()
    made = runs_of(store, uid)
    assert len(made) == rounds == len(started)
    assert len({r.run_id for r in made}) == rounds
    assert all(f.run_id is not None for f in started)
    with store.reader() as session:
        fires = session.scalar(
            select(func.count()).select_from(ScheduleFireRow).where(ScheduleFireRow.schedule_uid == uid)
        )
    assert fires == rounds


def test_a_fired_run_is_scheduled_team_owned_and_runs_as_the_schedules_agent(store: Store):
    who = person(store)
    env_id = environment(store, who)
    with store.session() as session:
        agent = create_agent(session, who, AgentCreateRequest(name="triager"), limit=AGENT_LIMIT)
    uid = make_schedule(store, who, env_id, agent_uid=agent.uid, model_id="claude-sonnet-4")
    [fired] = fire(store, due_at(store, uid))
    with store.reader() as session:
        run = runs.load_run(session, fired.run_id or "")
    assert run.source == RunSourceType.SCHEDULED_AGENT
    assert run.scope_type == "Team" and run.billed_to == ""  # the team pays for scheduled runs
    assert (run.creator_kind, run.creator_uid, run.executor_uid) == ("service_account", agent.uid, agent.uid)
    assert run.environment_id == env_id and run.model_id == "claude-sonnet-4" and run.title == "Nightly triage"
    assert run.prompt == "Triage new issues" and run.metadata == {"schedule": uid}
    without_agent = make_schedule(store, who, env_id, name="As me")
    [mine] = fire(store, due_at(store, without_agent))
    with store.reader() as session:
        run = runs.load_run(session, mine.run_id or "")
    assert (run.creator_kind, run.creator_uid, run.billed_to) == ("user", who.uid, "")


def test_after_downtime_one_catch_up_run_at_the_latest_missed_time_never_a_burst(store: Store):
    who = person(store)
    uid = make_schedule(store, who, environment(store, who))  # every five minutes
    first = due_at(store, uid)
    later = first + timedelta(hours=3, minutes=2)  # 36 fire times missed
    fired = fire(store, later)
    assert len(fired) == 1
    assert fired[0].fire_time == first + timedelta(hours=3)  # the latest missed, not the first
    assert len(runs_of(store, uid)) == 1
    assert due_at(store, uid) == first + timedelta(hours=3, minutes=5)  # the next one after now
    assert fire(store, later + timedelta(seconds=30)) == []  # nothing more until then
    with store.session() as session:
        item = schedules.get(session, who, uid)
    assert item.last_run is not None and item.last_run.run_id == fired[0].run_id
    assert item.last_run.state == RunState.QUEUED and item.next_fire_at == due_at(store, uid)


def _fire_times(cron: str, zone: str, start: datetime, end: datetime) -> list[datetime]:
    found = []
    for when in schedules.fire_times(cron, zone, start):
        if when >= end:
            return found
        found.append(when)
    return found


def test_time_zones_and_daylight_saving_time(store: Store):
    # Europe/Paris moves from CET (+1) to CEST (+2) on 2027-03-28 and back on 2027-10-31.
    march = datetime(2027, 3, 26, 12, tzinfo=UTC)
    assert _fire_times("0 9 * * *", "Europe/Paris", march, march + timedelta(days=3)) == [
        datetime(2027, 3, 27, 8, tzinfo=UTC),
        datetime(2027, 3, 28, 7, tzinfo=UTC),  # 09:00 local is an hour earlier in UTC after the change
        datetime(2027, 3, 29, 7, tzinfo=UTC),
    ]
    # 02:30 does not exist on the spring day: it fires right after the jump (03:00 CEST), once.
    assert _fire_times("30 2 * * *", "Europe/Paris", march, march + timedelta(days=3)) == [
        datetime(2027, 3, 27, 1, 30, tzinfo=UTC),
        datetime(2027, 3, 28, 1, 0, tzinfo=UTC),
        datetime(2027, 3, 29, 0, 30, tzinfo=UTC),
    ]
    # 02:30 happens twice on the autumn day: it fires once.
    october = datetime(2027, 10, 30, 12, tzinfo=UTC)
    autumn = _fire_times("30 2 * * *", "Europe/Paris", october, october + timedelta(days=2))
    assert autumn == [datetime(2027, 10, 31, 0, 30, tzinfo=UTC), datetime(2027, 11, 1, 1, 30, tzinfo=UTC)]

    # And through the scheduler: a weekday-morning schedule fires at 09:00 Paris time across the change.
    who = person(store)
    uid = make_schedule(store, who, environment(store, who), cron="0 9 * * *", timezone="Europe/Paris")
    with store.session() as session:
        row = session.get(ScheduleRow, uid)
        assert row is not None
        row.next_fire_at = datetime(2027, 3, 27, 8, tzinfo=UTC)
    times = []
    for now in (datetime(2027, 3, 27, 8, 0, 20, tzinfo=UTC), datetime(2027, 3, 28, 7, 0, 20, tzinfo=UTC)):
        assert fire(store, now - timedelta(minutes=30)) == []  # not yet: 09:00 local is still ahead
        times += [f.fire_time for f in fire(store, now)]
    assert times == [datetime(2027, 3, 27, 8, tzinfo=UTC), datetime(2027, 3, 28, 7, tzinfo=UTC)]
    assert due_at(store, uid) == datetime(2027, 3, 29, 7, tzinfo=UTC)


def test_bad_cron_zone_environment_or_instruction_are_refused_at_once(store: Store):
    who = person(store)
    env_id = environment(store, who)
    for fields, words in (
        ({"cron": "61 * * * *"}, "not valid"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"environment_id": "nope"}, "environment nope not found"),
        ({"skill": "not a skill spec", "prompt": None}, "skill"),
    ):
        with pytest.raises(OzError) as refused:
            make_schedule(store, who, env_id, **fields)
        assert words in refused.value.message
    with pytest.raises(ValueError, match="a prompt or a skill"):
        ScheduleCreate(name="x", cron="* * * * *", environment_id=env_id)
    assert runs_of(store, "any") == []


def test_a_schedule_whose_environment_was_deleted_pauses_itself_and_says_why(store: Store):
    who = person(store)
    env_id = environment(store, who)
    uid = make_schedule(store, who, env_id)
    with store.session() as session:
        delete_environment(session, who, env_id)
    for attempt in range(PAUSE_AFTER):
        [fired] = fire(store, due_at(store, uid))
        assert fired.run_id is None and fired.error is not None
        assert fired.error.code == ErrorCode.RESOURCE_NOT_FOUND
        with store.reader() as session:
            item = schedules.get(session, who, uid)
        assert item.status == ("paused" if attempt == PAUSE_AFTER - 1 else "active")
    assert item.paused_reason is not None
    assert "3 failed runs in a row (resource_not_found)" in item.paused_reason
    assert f"environment {env_id} not found" in item.paused_reason
    assert item.next_fire_at is None
    assert fire(store, utcnow() + timedelta(days=1)) == []  # paused: nothing fires
    with store.session() as session, pytest.raises(OzError, match="not found"):
        schedules.set_paused(session, who, uid, False, AGENT_LIMIT)  # still broken: cannot resume
    fixed = environment(store, who)
    with store.session() as session:
        schedules.update_schedule(session, who, uid, ScheduleUpdate(environment_id=fixed), AGENT_LIMIT)
        item = schedules.set_paused(session, who, uid, False, AGENT_LIMIT)
    assert item.status == "active" and item.paused_reason is None
    [fired] = fire(store, utcnow() + timedelta(days=2))  # past the fires the test's clock already made
    assert fired.run_id is not None


def test_runs_that_keep_failing_for_their_configuration_pause_it_but_a_spent_budget_does_not(store: Store):
    who = person(store)
    uid = make_schedule(store, who, environment(store, who))
    for n in range(PAUSE_AFTER):
        [fired] = fire(store, due_at(store, uid))
        code = ErrorCode.BUDGET_EXCEEDED if n == 0 else ErrorCode.ENVIRONMENT_SETUP_FAILED
        runs.record_failure(store, None, fired.run_id or "", OzError(code, "pip install failed"))
    schedules.pause_failing(store, PAUSE_AFTER)
    with store.reader() as session:
        assert schedules.get(session, who, uid).status == "active"  # one of the three was the budget's
    [fired] = fire(store, due_at(store, uid))
    runs.record_failure(store, None, fired.run_id or "", OzError(ErrorCode.ENVIRONMENT_SETUP_FAILED, "pip failed"))
    schedules.pause_failing(store, PAUSE_AFTER)
    with store.reader() as session:
        item = schedules.get(session, who, uid)
    assert item.status == "paused"
    assert item.paused_reason and "(environment_setup_failed)" in item.paused_reason


def test_a_fire_left_half_done_by_a_dead_scheduler_is_finished_once(store: Store):
    who = person(store)
    uid = make_schedule(store, who, environment(store, who))
    when = due_at(store, uid)
    with store.session() as session:  # claimed, then the scheduler died before creating the run
        session.add(ScheduleFireRow(schedule_uid=uid, fire_time=when, claimed_at=utcnow() - timedelta(minutes=5)))
        row = session.get(ScheduleRow, uid)
        assert row is not None
        row.next_fire_at = when + timedelta(minutes=5)
    [finished] = fire(store, when + timedelta(seconds=30))
    assert finished.fire_time == when and finished.run_id is not None
    assert fire(store, when + timedelta(seconds=40)) == []
    assert [r.run_id for r in runs_of(store, uid)] == [finished.run_id]


def test_only_the_creator_or_an_admin_changes_a_schedule_and_other_teams_never_see_it(store: Store):
    admin = person(store, "admin@example.com")  # a team's first account is its admin
    sam = person(store, "sam@example.com")
    ria = person(store, "ria@example.com")
    with store.session() as session:
        stranger = create_account(session, "x@other.example", "other")
    outsider = Principal(kind="user", uid=stranger.uid, team_uid=stranger.team_uid)
    uid = make_schedule(store, sam, environment(store, sam))
    with store.session() as session, pytest.raises(OzError, match="creator or a team admin"):
        schedules.set_paused(session, ria, uid, True, AGENT_LIMIT)
    with store.session() as session:
        assert schedules.set_paused(session, admin, uid, True, AGENT_LIMIT).status == "paused"
    with store.session() as session, pytest.raises(OzError, match="not found"):
        schedules.get(session, outsider, uid)
    with store.reader() as session:
        assert [s.uid for s in schedules.list_schedules(session, ria).schedules] == [uid]
        assert schedules.list_schedules(session, outsider).schedules == []
    with store.session() as session:
        schedules.delete(session, sam, uid)
    with store.reader() as session:
        assert schedules.list_schedules(session, sam).schedules == []
