"""End to end: @Oz in a thread → :eyes: → "On it" edited as the run moves → the PR link in the
thread.  The real bolt app, a real worker running the ``command`` harness in Docker, and the
real ``oz-gateway reporter`` process; only Slack and GitHub are local fakes."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import budgets, identity
from core.models import IntegrationProvider, RunState
from core.models.wire import TERMINAL_STATES
from core.queue import RunQueue
from core.settings import Settings
from core.store import Store
from tests.fakes.github import FakeGitHub
from tests.fakes.slack import TEAM, FakeSlack
from tests.live_server import LiveServer
from tests.runner_support import COSTLY_CONTAINERS, Remotes, person_with_repo, start_agent_worker
from tests.support.slack import ADA, SlackDelivery, all_runs, event
from tests.support.waiting import wait_for

CHANNEL = "C0LAN2Q65"
THREAD = "1732320100.000200"


@pytest.fixture
def ada_with_github(store: Store, e2e_settings: Settings, github: FakeGitHub, remotes: Remotes, test_image: str):
    principal = person_with_repo(store, e2e_settings, github, remotes, test_image, IntegrationProvider.SLACK)
    with store.session() as session:
        identity.link(session, IntegrationProvider.SLACK, TEAM, ADA, principal.uid)
    return principal


def test_mention_to_pull_request_in_the_thread(
    tmp_path: Path,
    e2e_gateway: LiveServer,
    signing_secret: str,
    fake_slack: FakeSlack,
    github: FakeGitHub,
    store: Store,
    database_url: str,
    queue: RunQueue,
    runner_settings: Settings,
    test_image: str,
    ada_with_github,
    reporter_process: None,
) -> None:
    deliver = SlackDelivery(f"{e2e_gateway.url}/slack/events", signing_secret)
    body = event("event.app_mention.thread")
    for retry in (None, 1, 2):  # Slack thought we were slow: three deliveries
        assert deliver.post(body, retry=retry).status_code == 200

    worker = start_agent_worker(tmp_path, database_url, queue, runner_settings, test_image)
    try:
        run = wait_for(lambda: all_runs(store), what="the run")[0]
        wait_for(lambda: all_runs(store)[0].state in TERMINAL_STATES, timeout=90, what="the run to finish")
    finally:
        worker.terminate()
        worker.wait(30)
    assert [r.state for r in all_runs(store)] == [RunState.SUCCEEDED]

    assert len(github.pulls) == 1
    pr_url = github.pulls[0]["html_url"]
    thread = fake_slack.in_thread(CHANNEL, THREAD)
    status = fake_slack.messages[run.origin.ref["status_ts"]]
    wait_for(lambda: "Done" in status.text, timeout=20, what="the status message to show the outcome")
    final = wait_for(lambda: [m for m in fake_slack.in_thread(CHANNEL, THREAD) if m is not status], timeout=20)
    assert len(final) == 1
    assert pr_url in final[0].everything
    assert "Updated README.md as asked." in final[0].everything
    assert pr_url in json_text(status.blocks)

    # The status message went through the run's phases, edited in place, never re-posted.
    shown = " ".join(str(e["text"]) for e in status.edits)
    assert "On it" in shown and "Done" in shown
    thread = fake_slack.in_thread(CHANNEL, THREAD)
    assert len(thread) == 2  # "On it" (edited) and the closing post — nothing else
    assert len(fake_slack.calls_to("reactions.add")) == 1
    assert fake_slack.calls_to("assistant.threads.setStatus")  # Slack's own "is working…"


def json_text(blocks: list) -> str:
    import json

    return json.dumps(blocks)


def test_a_run_crossing_its_budget_is_stopped_and_the_thread_is_told(
    tmp_path: Path,
    e2e_gateway: LiveServer,
    signing_secret: str,
    fake_slack: FakeSlack,
    store: Store,
    database_url: str,
    queue: RunQueue,
    runner_settings: Settings,
    test_image: str,
    ada_with_github,
    reporter_process: None,
) -> None:
    with store.session() as session:
        budgets.set_budget(session, ada_with_github.team_uid, ada_with_github.uid, 1.0)
    deliver = SlackDelivery(f"{e2e_gateway.url}/slack/events", signing_secret)
    assert deliver.post(event("event.app_mention.thread")).status_code == 200
    worker = start_agent_worker(
        tmp_path, database_url, queue, runner_settings, test_image, "sleep.sh", **COSTLY_CONTAINERS
    )
    try:
        run = wait_for(lambda: all_runs(store), what="the run")[0]
        wait_for(lambda: all_runs(store)[0].state in TERMINAL_STATES, timeout=90, what="the run to be stopped")
    finally:
        worker.terminate()
        worker.wait(30)
    [stopped] = all_runs(store)
    assert stopped.state == RunState.FAILED and stopped.status_message.error_code == "budget_exceeded"
    status = fake_slack.messages[run.origin.ref["status_ts"]]
    final = wait_for(
        lambda: [m for m in fake_slack.in_thread(CHANNEL, THREAD) if m is not status], timeout=20, what="the post"
    )
    told = final[0].everything
    assert "The run was stopped at its spending limit" in told
    assert "what was left of the creator's monthly budget ($1.00)" in told
    assert "budget_exceeded" in told and "oz-gateway budget set" in told
    assert "Took " in told and "cost $1." in told  # what it cost, just over the line it crossed
