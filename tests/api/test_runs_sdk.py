"""The official ``oz-agent-sdk`` client against a live gateway: runs end to end."""

from __future__ import annotations

from datetime import timedelta

import pytest
from oz_agent_sdk import BadRequestError, ConflictError, NotFoundError, PermissionDeniedError, UnprocessableEntityError
from rq.job import Job

from core import environments, runs
from core.models import Principal, RunSourceType, RunState
from core.models.wire import RunAgentRequest
from core.queue import RunQueue
from core.store import Store, utcnow
from tests.support.people import AGENT_LIMIT, Person


def principal_of(person: Person) -> Principal:
    a = person.account
    return Principal(kind="user", uid=a.uid, team_uid=a.team_uid, email=a.email)


def make_env(store: Store, person: Person, name: str = "backend") -> str:
    with store.session() as session:
        env = environments.create_environment(
            session,
            principal_of(person),
            name=name,
            docker_image="debian:12",
            repos=["acme/api"],
            setup_commands=["true"],
        )
    return env.uid


def test_create_then_retrieve_shows_the_run_as_queued_with_its_job(alice: Person, store: Store, queue: RunQueue):
    env_id = make_env(store, alice)
    created = alice.client.agent.run(
        prompt="Summarize the repo\nand more", config={"environment_id": env_id, "name": "nightly"}
    )
    assert created.state == "QUEUED"
    assert created.task_id == created.run_id
    assert created.at_capacity is False

    run = alice.client.agent.runs.retrieve(created.run_id)
    assert run.prompt == "Summarize the repo\nand more"
    assert run.title == "Summarize the repo"
    assert run.state == "QUEUED"
    assert run.source == "API"
    assert run.agent_config.name == "nightly"
    assert run.agent_config.environment_id == env_id
    assert run.creator.email == "alice@example.com"
    assert run.creator.type == "user"
    assert run.scope.type == "Team"
    assert run.is_run_type_cancellable is True
    assert run.conversation_id
    # One RQ job per run, and its id is the run id.
    job = Job.fetch(created.run_id, connection=queue.connection)
    assert job.func_name == "runner.job.execute_run"
    assert job.args == (created.run_id,)
    assert queue.queue.get_job_ids() == [created.run_id]


def test_same_idempotency_key_returns_the_same_run(alice: Person, queue: RunQueue):
    headers = {"Idempotency-Key": "slack-evt-123"}
    first = alice.client.agent.run(prompt="fix it", extra_headers=headers)
    second = alice.client.agent.run(prompt="fix it", extra_headers=headers)
    other = alice.client.agent.run(prompt="fix it", extra_headers={"Idempotency-Key": "slack-evt-124"})
    assert first.run_id == second.run_id
    assert other.run_id != first.run_id
    assert sorted(queue.queue.get_job_ids()) == sorted([first.run_id, other.run_id])


def test_list_filters_each_narrow_the_result(alice: Person, make_person, store: Store, queue: RunQueue):
    bob = make_person("bob@example.com", team="acme")
    env_id = make_env(store, alice)
    a1 = alice.client.agent.run(prompt="one", config={"name": "nightly", "model_id": "m-large"}).run_id
    a2 = alice.client.agent.run(prompt="two", config={"name": "weekly", "environment_id": env_id}).run_id
    b1 = bob.client.agent.run(prompt="three", config={"name": "nightly"}).run_id
    cli = runs.create(
        store,
        queue,
        principal_of(bob),
        RunAgentRequest(prompt="four"),
        source=RunSourceType.CLI,
        agent_limit=AGENT_LIMIT,
    )
    alice.client.agent.runs.cancel(a2)

    def ids(**filters) -> set[str]:
        return {r.run_id for r in alice.client.agent.runs.list(**filters)}

    assert ids() == {a1, a2, b1, cli.run.run_id}
    assert ids(state=["QUEUED"]) == {a1, b1, cli.run.run_id}
    assert ids(state=["CANCELLED", "QUEUED"]) == {a1, a2, b1, cli.run.run_id}
    assert ids(name="nightly") == {a1, b1}
    assert ids(model_id="m-large") == {a1}
    assert ids(creator=bob.account.uid) == {b1, cli.run.run_id}
    assert ids(source="CLI") == {cli.run.run_id}
    assert ids(environment_id=env_id) == {a2}
    assert ids(q="thr") == {b1}
    with store.session() as session:
        created_b1 = runs.load_run(session, b1).created_at
    assert ids(created_after=created_b1) == {cli.run.run_id}
    assert ids(created_before=created_b1) == {a1, a2}
    assert ids(created_after=utcnow() + timedelta(hours=1)) == set()


def test_metadata_round_trips_and_filters(alice: Person):
    tagged = alice.client.agent.run(prompt="x", metadata={"ticket_id": "VIS-238", "team.area": "auth"}).run_id
    alice.client.agent.run(prompt="y", metadata={"ticket_id": "VIS-239"})
    assert alice.client.agent.runs.retrieve(tagged).metadata == {"ticket_id": "VIS-238", "team.area": "auth"}
    found = list(alice.client.agent.runs.list(metadata={"ticket_id": "VIS-238"}))
    assert [r.run_id for r in found] == [tagged]


def test_pages_follow_the_cursor_without_gaps_or_repeats(alice: Person):
    created = [alice.client.agent.run(prompt=f"task {i}").run_id for i in range(7)]
    first = alice.client.agent.runs.list(limit=3)
    assert len(first.runs) == 3
    assert first.page_info.has_next_page is True and first.page_info.next_cursor
    seen = [r.run_id for r in alice.client.agent.runs.list(limit=3)]  # the SDK walks every page
    assert sorted(seen) == sorted(created)
    assert seen == list(reversed(created))  # newest first (updated_at desc)
    oldest_first = [r.run_id for r in alice.client.agent.runs.list(limit=2, sort_by="created_at", sort_order="asc")]
    assert oldest_first == created
    by_title = [r.title for r in alice.client.agent.runs.list(limit=4, sort_by="title", sort_order="asc")]
    assert by_title == sorted(by_title)
    last = alice.client.agent.runs.list(limit=10)
    assert last.page_info.has_next_page is False and last.page_info.next_cursor is None


def test_a_cursor_for_another_sort_is_refused(alice: Person):
    for i in range(3):
        alice.client.agent.run(prompt=f"t{i}")
    cursor = alice.client.agent.runs.list(limit=1).page_info.next_cursor
    with pytest.raises(BadRequestError) as err:
        alice.client.agent.runs.list(limit=1, cursor=cursor, sort_by="title")
    assert err.value.body["error"].startswith("The request contains invalid")
    with pytest.raises(BadRequestError):
        alice.client.agent.runs.list(cursor="not-a-cursor")


def test_cancel_a_queued_run(alice: Person, queue: RunQueue):
    run_id = alice.client.agent.run(prompt="long task").run_id
    assert alice.client.agent.runs.cancel(run_id) == run_id
    run = alice.client.agent.runs.retrieve(run_id)
    assert run.state == "CANCELLED"
    assert run.status_message.message == "Cancelled by alice@example.com"
    assert run_id not in queue.queue.get_job_ids()


def test_cancel_a_pending_run_is_a_retryable_conflict(alice: Person, store: Store):
    run_id = alice.client.agent.run(prompt="x").run_id
    with store.session() as session:
        runs.set_status(session, run_id, RunState.PENDING)
    with pytest.raises(ConflictError) as err:
        alice.client.agent.runs.cancel(run_id)
    assert err.value.status_code == 409
    assert err.value.response.headers["content-type"].startswith("application/problem+json")
    assert err.value.response.headers["x-should-retry"] == "true"
    body = err.value.body
    assert body["type"] == "/reference/api-and-sdk/troubleshooting/errors/conflict/"
    assert body["title"] == "Pending agent runs cannot be cancelled, retry after a moment."
    assert body["retryable"] is True
    assert body["instance"] == f"/api/v1/agent/runs/{run_id}/cancel"
    assert alice.client.agent.runs.retrieve(run_id).state == "PENDING"


def test_cancel_a_github_action_run_is_not_supported(alice: Person, store: Store, queue: RunQueue):
    created = runs.create(
        store,
        queue,
        principal_of(alice),
        RunAgentRequest(prompt="ci"),
        source=RunSourceType.GITHUB_ACTION,
        agent_limit=AGENT_LIMIT,
    )
    assert alice.client.agent.runs.retrieve(created.run.run_id).is_run_type_cancellable is False
    with pytest.raises(UnprocessableEntityError) as err:
        alice.client.agent.runs.cancel(created.run.run_id)
    assert err.value.body["type"].endswith("/operation-not-supported/")
    assert "GitHub Actions" in err.value.body["title"]
    assert err.value.body["retryable"] is False


def test_cancel_a_finished_run_is_a_bad_request(alice: Person, store: Store):
    run_id = alice.client.agent.run(prompt="x").run_id
    with store.session() as session:
        for state in (RunState.PENDING, RunState.CLAIMED, RunState.INPROGRESS, RunState.SUCCEEDED):
            runs.set_status(session, run_id, state)
    with pytest.raises(BadRequestError) as err:
        alice.client.agent.runs.cancel(run_id)
    assert "SUCCEEDED" in err.value.body["detail"]
    assert alice.client.agent.runs.retrieve(run_id).state == "SUCCEEDED"


def test_cancel_a_running_run(alice: Person, store: Store):
    run_id = alice.client.agent.run(prompt="x").run_id
    with store.session() as session:
        for state in (RunState.PENDING, RunState.CLAIMED, RunState.INPROGRESS):
            runs.set_status(session, run_id, state)
    alice.client.agent.runs.cancel(run_id)
    run = alice.client.agent.runs.retrieve(run_id)
    assert run.state == "CANCELLED"
    assert run.started_at is not None
    assert run.run_time is not None and run.run_time.startswith("PT")


def test_followup_to_an_active_run_is_kept_for_it(alice: Person, store: Store, queue: RunQueue):
    run_id = alice.client.agent.run(prompt="x").run_id
    alice.client.agent.runs.submit_followup(run_id, message="also update the docs")
    assert alice.client.agent.runs.retrieve(run_id).state == "QUEUED"
    with store.session() as session:
        assert [f.message for f in runs.pending_followups(session, run_id)] == ["also update the docs"]
    assert queue.queue.get_job_ids() == [run_id]


def test_followup_to_a_finished_run_reopens_it(alice: Person, store: Store, queue: RunQueue):
    run_id = alice.client.agent.run(prompt="x").run_id
    queue.queue.empty()
    with store.session() as session:
        for state in (RunState.PENDING, RunState.CLAIMED, RunState.INPROGRESS, RunState.SUCCEEDED):
            runs.set_status(session, run_id, state)
    alice.client.agent.runs.submit_followup(run_id, message="now add a test")
    run = alice.client.agent.runs.retrieve(run_id)
    assert run.state == "QUEUED"
    assert run.status_message is None
    assert queue.queue.get_job_ids() == [run_id]


def test_blank_followup_is_refused(alice: Person):
    run_id = alice.client.agent.run(prompt="x").run_id
    with pytest.raises(BadRequestError) as err:
        alice.client.agent.runs.submit_followup(run_id, message="   ")
    assert "message" in err.value.body["detail"]


def test_runs_are_visible_only_inside_their_team(alice: Person, make_person):
    bob = make_person("bob@example.com", team="acme")
    mallory = make_person("mallory@example.com", team="evil corp")
    team_run = alice.client.agent.run(prompt="shared").run_id
    personal = alice.client.agent.run(prompt="mine", team=False).run_id

    assert bob.client.agent.runs.retrieve(team_run).run_id == team_run
    with pytest.raises(NotFoundError) as err:
        mallory.client.agent.runs.retrieve(team_run)
    assert err.value.body["detail"] == f"run {team_run} not found"
    with pytest.raises(NotFoundError):
        mallory.client.agent.runs.cancel(team_run)
    assert list(mallory.client.agent.runs.list()) == []

    with pytest.raises(PermissionDeniedError) as err:
        bob.client.agent.runs.retrieve(personal)
    assert err.value.body["type"].endswith("/not-authorized/")
    assert {r.run_id for r in bob.client.agent.runs.list()} == {team_run}
    assert alice.client.agent.runs.retrieve(personal).scope.type == "User"
