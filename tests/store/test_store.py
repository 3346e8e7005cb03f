"""The store on SQLite and PostgreSQL: schema, transitions, races, idempotency, times."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import inspect

from core import runs
from core.accounts import create_account
from core.errors import ErrorCode, OzError
from core.models import Principal, RunState
from core.models.wire import RunAgentRequest
from core.runs import TRANSITIONS, IllegalTransition, StaleState
from core.store import Store
from tests.support.people import AGENT_LIMIT

S = RunState


@pytest.fixture
def person(store: Store) -> Principal:
    with store.session() as session:
        account = create_account(session, "dev@example.com", "core")
    return Principal(kind="user", uid=account.uid, team_uid=account.team_uid, email=account.email)


def new_run(store: Store, person: Principal, **kwargs) -> str:
    return runs.create(store, None, person, RunAgentRequest(prompt="p", **kwargs), agent_limit=AGENT_LIMIT).run.run_id


def test_migrations_create_every_table_and_the_list_indexes(store: Store):
    inspector = inspect(store.engine)
    assert {
        "teams",
        "accounts",
        "agent_identities",
        "api_keys",
        "environments",
        "runs",
        "run_metadata",
        "run_followups",
        "run_attachments",
        "artifacts",
        "alembic_version",
    } <= set(inspector.get_table_names())
    indexes = {i["name"] for i in inspector.get_indexes("runs")}
    assert {
        "ix_runs_team_updated",
        "ix_runs_team_state_updated",
        "ix_runs_team_name",
        "ix_runs_team_model",
        "ix_runs_team_creator",
        "ix_runs_team_source",
        "ix_runs_team_created",
    } <= indexes
    store.migrate()  # idempotent


def test_every_legal_transition_and_no_other(store: Store, person: Principal):
    for source, targets in TRANSITIONS.items():
        for target in S:
            run_id = new_run(store, person)
            with store.session() as session:
                _drive_to(session, run_id, source)
                if target in targets:
                    assert runs.set_status(session, run_id, target).state == target
                else:
                    with pytest.raises(IllegalTransition):
                        runs.set_status(session, run_id, target)


PATHS = {
    S.QUEUED: [],
    S.PENDING: [S.PENDING],
    S.CLAIMED: [S.PENDING, S.CLAIMED],
    S.INPROGRESS: [S.PENDING, S.CLAIMED, S.INPROGRESS],
    S.BLOCKED: [S.PENDING, S.CLAIMED, S.INPROGRESS, S.BLOCKED],
    S.SUCCEEDED: [S.PENDING, S.CLAIMED, S.INPROGRESS, S.SUCCEEDED],
    S.FAILED: [S.FAILED],
    S.ERROR: [S.ERROR],
    S.CANCELLED: [S.CANCELLED],
}


def _drive_to(session, run_id: str, state: RunState) -> None:
    for step in PATHS[state]:
        runs.set_status(session, run_id, step)


def test_expected_state_mismatch_is_stale_not_a_bug(store: Store, person: Principal):
    run_id = new_run(store, person)
    with store.session() as session:
        runs.set_status(session, run_id, S.CANCELLED)
    with store.session() as session, pytest.raises(StaleState) as err:
        runs.set_status(session, run_id, S.PENDING, expected={S.QUEUED})
    assert err.value.current == S.CANCELLED
    with store.session() as session, pytest.raises(IllegalTransition):
        runs.set_status(session, run_id, S.PENDING, expected={S.INPROGRESS})


def race_claim_and_cancel(store: Store, person: Principal, run_id: str) -> list[str]:
    """A worker's claim and a person's cancel, released at the same instant."""
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def claim() -> None:
        barrier.wait()
        with store.session() as session:
            try:
                runs.set_status(session, run_id, S.PENDING, expected={S.QUEUED})
                outcomes.append("claimed")
            except StaleState:
                outcomes.append("claim lost")

    def cancel() -> None:
        barrier.wait()
        try:
            runs.cancel(store, None, person, run_id)
            outcomes.append("cancelled")
        except OzError as error:
            assert error.code == ErrorCode.CONFLICT
            outcomes.append("cancel lost")

    threads = [threading.Thread(target=claim), threading.Thread(target=cancel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(outcomes)


def test_a_claim_and_a_cancel_racing_have_exactly_one_winner(store: Store, person: Principal):
    for _ in range(10):
        outcomes = race_claim_and_cancel(store, person, new_run(store, person))
        assert outcomes in (["cancel lost", "claimed"], ["cancelled", "claim lost"])


def test_idempotency_key_under_concurrency_creates_one_run(store: Store, person: Principal):
    results: list[str] = []
    barrier = threading.Barrier(6)

    def create() -> None:
        barrier.wait()
        created = runs.create(
            store, None, person, RunAgentRequest(prompt="once"), idempotency_key="evt-1", agent_limit=AGENT_LIMIT
        )
        results.append(created.run.run_id)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 6 and len(set(results)) == 1


def test_run_time_accumulates_across_executions(store: Store, person: Principal):
    run_id = new_run(store, person)
    with store.session() as session:
        for step in (S.PENDING, S.CLAIMED, S.INPROGRESS):
            runs.set_status(session, run_id, step)
        run = runs.set_status(session, run_id, S.SUCCEEDED)
    assert run.started_at is not None and run.finished_at is not None
    first = run.run_time_seconds
    assert first >= 0
    with store.session() as session:
        runs.set_status(session, run_id, S.QUEUED)  # a follow-up re-opened it
        for step in (S.PENDING, S.CLAIMED):
            runs.set_status(session, run_id, step)
        live = runs.load_run(session, run_id)
    later = live.execution_started_at + timedelta(seconds=90)
    assert runs.run_time(live, later) == pytest.approx(first + 90, abs=0.01)


def test_record_failure_maps_the_catalog_to_failed_or_error(store: Store, person: Principal):
    user_error = new_run(store, person)
    platform_error = new_run(store, person)
    done = new_run(store, person)
    failed = runs.record_failure(store, None, user_error, OzError(ErrorCode.ENVIRONMENT_SETUP_FAILED, "make: exit 2"))
    assert failed.state == S.FAILED
    assert failed.status_message.error_code == ErrorCode.ENVIRONMENT_SETUP_FAILED
    errored = runs.record_failure(store, None, platform_error, OzError(ErrorCode.INFRASTRUCTURE_TIMEOUT))
    assert errored.state == S.ERROR and errored.status_message.retryable is False
    with store.session() as session:
        runs.set_status(session, done, S.CANCELLED)
    assert runs.record_failure(store, None, done, OzError(ErrorCode.INTERNAL_ERROR)) is None  # finished runs stay


@pytest.mark.parametrize(("seconds", "text"), [(0, "PT0S"), (59.6, "PT1M"), (150, "PT2M30S"), (3725, "PT1H2M5S")])
def test_iso_duration(seconds: float, text: str):
    assert runs.iso_duration(seconds) == text


def test_a_run_queued_again_sheds_its_previous_outcome(store: Store, person: Principal):
    run_id = new_run(store, person)
    with store.session() as session:
        for step in (S.PENDING, S.CLAIMED, S.INPROGRESS):
            runs.set_status(session, run_id, step)
        done = runs.set_status(session, run_id, S.SUCCEEDED, status_message=runs.StatusMessage(message="Opened PR"))
        assert done.finished_at is not None and done.status_message.message == "Opened PR"
        again = runs.set_status(session, run_id, S.QUEUED, expected={S.SUCCEEDED})
    assert again.status_message is None and again.finished_at is None
    with store.reader() as session:
        stored = runs.load_run(session, run_id)
    assert stored.status_message is None and stored.finished_at is None


def test_an_urgent_writer_goes_before_writers_already_waiting():
    """The webhook ack's write (the delivery kept before it is answered) does not queue behind
    the work earlier deliveries do after their answers: it takes the writer's turn next."""
    import threading

    from core.store.engine import WriterLock

    lock = WriterLock()
    order: list[str] = []
    release = threading.Event()

    def holder() -> None:
        with lock.hold():
            order.append("holder")
            release.wait(10)

    def writer(name: str, urgent: bool, started: threading.Event) -> None:
        started.set()
        with lock.hold(urgent):
            order.append(name)

    first = threading.Thread(target=holder)
    first.start()
    while not order:
        threading.Event().wait(0.01)
    threads = []
    for name, urgent in (("background-1", False), ("background-2", False), ("ack", True)):
        started = threading.Event()
        thread = threading.Thread(target=writer, args=(name, urgent, started))
        thread.start()
        started.wait(5)
        threads.append(thread)
    deadline = threading.Event()
    while lock._urgent_waiting == 0 and not deadline.wait(0.01):  # the ack is waiting now
        pass
    release.set()
    for thread in [first, *threads]:
        thread.join(10)
    assert order[:2] == ["holder", "ack"]
    assert sorted(order[2:]) == ["background-1", "background-2"]
