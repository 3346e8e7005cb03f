"""Agent sessions: delegation or a mention starts a run (first thought at once), redelivery
makes one run, an unknown email gets an error activity, prompts steer the run."""

from __future__ import annotations

import time

import pytest

from core import budgets, integrations, runs
from core.models import IntegrationProvider, RunSourceType, RunState
from core.queue import RunQueue
from core.store import Store
from core.store.tables import RunFollowupRow
from tests.fakes.linear import APP_USER, FakeLinear
from tests.support.linear import DELEGATED_SESSION, SESSION, LinearDelivery, payload
from tests.support.slack import all_runs, run_count
from tests.support.waiting import wait_for, wait_settled


def test_delegation_starts_a_run_with_the_issue_as_prompt(
    deliver: LinearDelivery, fake_linear: FakeLinear, store: Store, queue: RunQueue, ada, linear_integration
) -> None:
    started = time.monotonic()
    assert deliver.post(payload("agent_session_event.created.delegated")).status_code == 200
    first = wait_for(lambda: fake_linear.activities(DELEGATED_SESSION), what="the first activity")
    assert time.monotonic() - started < 10
    assert first[0]["type"] == "thought" and first[0]["body"]

    run = wait_for(lambda: all_runs(store), what="the run")[0]
    assert run.source == RunSourceType.LINEAR and run.creator_uid == ada.uid
    assert run.metadata == {"ticket_id": "ENG-123", "ticket_source": "LINEAR"}
    assert run.origin.trigger_url == "https://linear.app/acme/issue/ENG-123/login-form-accepts-empty-passwords"
    assert queue.queue.job_ids == [run.run_id]
    prompt = run.prompt
    assert prompt.startswith("Keep changes small.\n\nAlways open draft PRs against main.")  # integration, guidance
    assert "Title: Login form accepts empty passwords" in prompt
    assert "Issue description wrote:\n> Submitting the login form with an empty password" in prompt
    assert "Grace Hopper wrote:\n> Reproduced on staging." in prompt
    assert "Labels: Bug" in prompt and "Priority: High" in prompt and "Team: Engineering" in prompt
    assert '<issue identifier="ENG-123">' in prompt  # Linear's promptContext

    update = wait_for(lambda: fake_linear.calls("agentSessionUpdate"), what="the session's run link")[0]
    assert update.variables == {
        "id": DELEGATED_SESSION,
        "input": {"externalUrls": [{"label": "Oz run", "url": f"http://gateway.test/console/runs/{run.run_id}"}]},
    }
    move = wait_for(lambda: fake_linear.calls("issueUpdate"), what="the issue moved to started")[0]
    assert move.variables == {"id": "b7e4c1d2-3a5f-4e6d-8c9b-0a1f2e3d4c5b", "stateId": "state-progress"}
    assert all(o.authorization == f"Bearer {deliver_token(fake_linear)}" for o in fake_linear.operations)


def deliver_token(fake_linear: FakeLinear) -> str:
    return fake_linear.operations[0].authorization.removeprefix("Bearer ")


def test_mention_session_uses_the_comment_and_does_not_move_the_issue(
    deliver: LinearDelivery, fake_linear: FakeLinear, store: Store, ada, linear_integration
) -> None:
    deliver.post(payload("agent_session_event.created"))
    run = wait_for(lambda: all_runs(store), what="the run")[0]
    assert "Request from Ada Lovelace:\nplease fix this and add a test" in run.prompt
    assert "@oz please fix" not in run.prompt.split("Conversation so far")[-1]  # the request is not repeated
    wait_for(lambda: fake_linear.calls("agentSessionUpdate"), what="the run link")
    assert fake_linear.calls("issueUpdate") == []


def test_redelivery_makes_one_run(
    deliver: LinearDelivery, fake_linear: FakeLinear, store: Store, queue: RunQueue, ada, linear_integration
) -> None:
    body = payload("agent_session_event.created")
    for _ in range(3):
        assert deliver.post(body).status_code == 200  # new delivery ids: Linear's retries
    wait_for(lambda: all_runs(store), what="the run")
    wait_settled(store)
    assert run_count(store) == 1
    assert queue.queue.count == 1
    assert len(fake_linear.activities(SESSION)) == 1


def test_unknown_email_gets_an_error_activity_and_no_run(
    deliver: LinearDelivery, fake_linear: FakeLinear, store: Store, queue: RunQueue, linear_integration
) -> None:
    body = payload("agent_session_event.created")
    body["agentSession"]["creator"]["email"] = "stranger@elsewhere.dev"
    deliver.post(body)
    errors = wait_for(lambda: [a for a in fake_linear.activities(SESSION) if a["type"] == "error"], what="the error")
    assert "Unable to locate your account" in errors[0]["body"]
    assert "stranger@elsewhere.dev" in errors[0]["body"]
    wait_settled(store)
    assert run_count(store) == 0 and queue.queue.count == 0


def test_disabled_integration_gets_an_error_activity(
    deliver: LinearDelivery, fake_linear: FakeLinear, store: Store, ada, linear_integration
) -> None:
    with store.session() as session:
        integrations.update_integration(session, ada, IntegrationProvider.LINEAR, enabled=False)
    deliver.post(payload("agent_session_event.created"))
    errors = wait_for(lambda: [a for a in fake_linear.activities(SESSION) if a["type"] == "error"], what="the error")
    assert "integration_disabled" in errors[0]["body"]
    assert run_count(store) == 0


def test_a_spent_budget_gets_an_error_activity_and_no_run(
    deliver: LinearDelivery, fake_linear: FakeLinear, store: Store, queue: RunQueue, ada, linear_integration
) -> None:
    with store.session() as session:
        budgets.set_budget(session, ada.team_uid, budgets.TEAM, 5.0)
        budgets.set_budget(session, ada.team_uid, ada.uid, 0.0)
    deliver.post(payload("agent_session_event.created"))
    errors = wait_for(lambda: [a for a in fake_linear.activities(SESSION) if a["type"] == "error"], what="the error")
    assert "insufficient_credits" in errors[0]["body"]
    assert "$0.00 of your $0.00 monthly budget is spent" in errors[0]["body"]
    wait_settled(store)
    assert run_count(store) == 0 and queue.queue.count == 0


def test_a_queued_run_shows_its_place_in_line_as_an_ephemeral_thought(
    deliver: LinearDelivery, fake_linear: FakeLinear, store: Store, queue: RunQueue, ada, linear_integration
) -> None:
    """No worker: the delegated issue's run waits first in line, the mention's second."""
    deliver.post(payload("agent_session_event.created.delegated"))
    wait_for(lambda: len(all_runs(store)) == 1, what="the first run")
    deliver.post(payload("agent_session_event.created"))
    wait_for(lambda: len(all_runs(store)) == 2, what="the second run")

    def shown(session: str) -> list[dict]:
        return [
            o.variables["input"]
            for o in fake_linear.calls("agentActivityCreate")
            if o.variables["input"]["agentSessionId"] == session and o.variables["input"].get("ephemeral")
        ]

    second = wait_for(lambda: shown(SESSION), what="the second session's place")
    assert [a["content"] for a in second] == [{"type": "thought", "body": "Queued: 2nd in line"}]
    wait_settled(store)
    assert shown(DELEGATED_SESSION) == []  # next in line: its "On it" says enough


def test_prompt_follows_up_and_stop_cancels(
    deliver: LinearDelivery, fake_linear: FakeLinear, store: Store, queue: RunQueue, ada, linear_integration
) -> None:
    deliver.post(payload("agent_session_event.created"))
    run = wait_for(lambda: all_runs(store), what="the run")[0]
    deliver.post(payload("agent_session_event.prompted"))
    wait_for(lambda: len(fake_linear.activities(SESSION)) >= 2, what="the follow-up acknowledgement")
    with store.reader() as session:
        followups = [r.message for r in session.query(RunFollowupRow).filter_by(run_id=run.run_id)]
    assert followups == ["Also handle whitespace-only passwords"]
    assert run_count(store) == 1

    deliver.post(payload("agent_session_event.prompted.stop"))

    def cancelled() -> bool:
        with store.reader() as session:
            return runs.load_run(session, run.run_id).state == RunState.CANCELLED

    wait_for(cancelled, what="the cancel")
    closing = wait_for(lambda: [a for a in fake_linear.activities(SESSION) if a["type"] == "response"])
    assert "was stopped" in closing[0]["body"]


def test_the_apps_own_prompt_is_ignored(
    deliver: LinearDelivery, fake_linear: FakeLinear, store: Store, ada, linear_integration
) -> None:
    body = payload("agent_session_event.prompted")
    body["agentActivity"]["userId"] = APP_USER
    assert deliver.post(body).status_code == 200
    wait_settled(store)
    assert fake_linear.operations == [] and run_count(store) == 0


def test_someone_else_in_the_session_cannot_steer_or_stop_the_run(
    deliver: LinearDelivery, fake_linear: FakeLinear, store: Store, queue: RunQueue, ada, linear_integration
) -> None:
    from core.accounts import create_account

    grace_id = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
    with store.session() as session:  # Grace is on the team too, but the run is Ada's
        create_account(session, "grace@acme.dev", "acme", display_name="Grace Hopper")
    fake_linear.users[grace_id] = {
        **fake_linear.users[next(iter(fake_linear.users))],
        "id": grace_id,
        "name": "Grace Hopper",
        "email": "grace@acme.dev",
    }
    deliver.post(payload("agent_session_event.created"))
    run = wait_for(lambda: all_runs(store), what="the run")[0]
    for name in ("agent_session_event.prompted", "agent_session_event.prompted.stop"):
        body = payload(name)
        body["agentActivity"]["userId"] = grace_id
        body["webhookId"] = body.get("webhookId", "") + "-grace"
        deliver.post(body)

    errors = wait_for(
        lambda: (
            len([a for a in fake_linear.activities(SESSION) if a["type"] == "error"]) >= 2
            and [a for a in fake_linear.activities(SESSION) if a["type"] == "error"]
        )
    )
    bodies = " | ".join(e["body"] for e in errors)  # the two deliveries are handled concurrently
    assert "can follow up on it" in bodies and "can cancel it" in bodies
    with store.reader() as session:
        assert session.query(RunFollowupRow).filter_by(run_id=run.run_id).count() == 0
        assert runs.load_run(session, run.run_id).state == RunState.QUEUED


def test_a_delivery_whose_handling_failed_is_handled_when_linear_sends_it_again(
    deliver: LinearDelivery, fake_linear: FakeLinear, store: Store, queue: RunQueue, ada, linear_integration
) -> None:
    fake_linear.refuse("issue")  # Linear is having a bad moment: the issue cannot be read
    assert deliver.post(payload("agent_session_event.created")).status_code == 200
    wait_for(lambda: fake_linear.calls("issue"), what="the failed attempt")
    fake_linear.accept("issue")

    # Linear's retry: refused as a duplicate only until the failed attempt has released its claim.
    wait_for(
        lambda: not deliver.post(payload("agent_session_event.created")).json().get("duplicate"),
        what="the redelivery to be handled",
    )
    wait_for(lambda: all_runs(store), what="the run from the retried delivery")
    assert run_count(store) == 1


@pytest.mark.parametrize("first", ["comment", "session"])
def test_one_mention_delivered_as_a_comment_and_as_a_session_makes_one_run(
    first: str, deliver: LinearDelivery, fake_linear: FakeLinear, store: Store, queue: RunQueue, ada, linear_integration
) -> None:
    """An app subscribed to both gets a mention twice — the data-change ``Comment`` webhook and
    the ``AgentSessionEvent`` for the session Linear opens on that comment — in either order."""
    session = payload("agent_session_event.created")
    comment = payload("comment.create.mention")
    comment["data"]["id"] = session["agentSession"]["commentId"]
    comment["data"]["body"] = session["agentSession"]["comment"]["body"]
    deliveries = {"comment": comment, "session": session}
    second = "session" if first == "comment" else "comment"

    assert deliver.post(deliveries[first]).status_code == 200
    wait_for(lambda: all_runs(store), what="the run")
    assert deliver.post(deliveries[second]).status_code == 200
    update = wait_for(lambda: fake_linear.calls("agentSessionUpdate"), what="the session linked to the run")[0]
    wait_settled(store)

    [run] = all_runs(store)
    assert queue.queue.count == 1
    assert update.variables["input"]["externalUrls"][0]["url"].endswith(run.run_id)
    assert run.origin.ref["session"] == SESSION  # its steps and its end go to the session
    assert store.call(runs.latest_for_origin, run.team_uid, f"linear:session:{SESSION}").run_id == run.run_id
    if first == "session":
        assert fake_linear.calls("commentCreate") == []  # no "On it" comment beside the session


def test_a_huge_issue_keeps_the_prompt_within_its_budget(
    deliver: LinearDelivery, fake_linear: FakeLinear, store: Store, ada, linear_integration
) -> None:
    from core.prompts import DEFAULT_BUDGET

    fake_linear.issue["description"] = "Stack trace:\n" + "at frame\n" * 200_000  # ~1.8 MB
    comment = fake_linear.issue["comments"]["nodes"][0]
    fake_linear.issue["comments"]["nodes"] = [
        {**comment, "id": f"c{i}", "body": f"note {i} " + "y" * 3000} for i in range(500)
    ]
    deliver.post(payload("agent_session_event.created"))
    run = wait_for(lambda: all_runs(store), what="the run", timeout=30)[0]
    assert len(run.prompt) <= DEFAULT_BUDGET + 2000
    assert "please fix this and add a test" in run.prompt  # the request itself always stays
    assert "note 499" in run.prompt


def test_a_mention_that_is_only_whitespace_asks_for_the_issue_itself(
    deliver: LinearDelivery, fake_linear: FakeLinear, store: Store, queue: RunQueue, ada, linear_integration
) -> None:
    """On Linear the issue is the request: a bare mention works on it, as delegation does (and as
    a mention that opens an agent session does) — never a run with an empty request."""
    body = payload("comment.create.mention")
    body["data"]["body"] = "@Oz   \n\t "
    assert deliver.post(body).status_code == 200
    run = wait_for(lambda: all_runs(store), what="the run")[0]
    assert "Request from Ada Lovelace:\nWork on this issue: Login form accepts empty passwords" in run.prompt
