"""End to end: an issue delegated to the app → the first thought within seconds → the agent's
steps as action activities → the pull request attached to the issue and a closing response.
The real webhook handler and gql client, a real worker (``command`` harness in Docker) and the
real ``oz-gateway reporter``; only Linear and GitHub are local fakes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core import budgets
from core.models import IntegrationProvider, RunState
from core.models.wire import TERMINAL_STATES
from core.queue import RunQueue
from core.settings import Settings
from core.store import Store
from tests.fakes.github import FakeGitHub
from tests.fakes.linear import FakeLinear
from tests.live_server import LiveServer, gateway_server
from tests.runner_support import (
    COSTLY_CONTAINERS,
    Remotes,
    person_with_repo,
    settings_with,
    start_agent_worker,
    start_reporter,
)
from tests.support.linear import DELEGATED_SESSION, LinearDelivery, payload
from tests.support.slack import all_runs
from tests.support.waiting import wait_for

ISSUE = "b7e4c1d2-3a5f-4e6d-8c9b-0a1f2e3d4c5b"


@pytest.fixture
def e2e_settings(
    runner_settings: Settings, fake_linear: FakeLinear, webhook_secret: str, linear_token: str
) -> Settings:
    return settings_with(
        runner_settings,
        linear_webhook_secret=webhook_secret,
        linear_access_token=linear_token,
        linear_api_url=fake_linear.url,
    )


@pytest.fixture
def e2e_gateway(e2e_settings: Settings, store: Store, queue: RunQueue) -> Iterator[LiveServer]:
    with gateway_server(e2e_settings, store, queue) as server:
        yield server


@pytest.fixture
def reporter_process(
    tmp_path: Path,
    e2e_settings: Settings,
    webhook_secret: str,
    fake_linear: FakeLinear,
    database_url: str,
    queue: RunQueue,
) -> Iterator[None]:
    """The real ``oz-gateway reporter``, rendering runs into the fake Linear."""
    reporter = start_reporter(
        tmp_path,
        database_url,
        queue,
        OZGW_PUBLIC_URL=e2e_settings.public_url,
        OZGW_LINEAR_WEBHOOK_SECRET=webhook_secret,
        OZGW_LINEAR_ACCESS_TOKEN=e2e_settings.linear_access_token.get_secret_value(),
        OZGW_LINEAR_API_URL=fake_linear.url,
    )
    yield
    reporter.terminate()
    reporter.wait(30)


@pytest.fixture
def ada_with_github(store: Store, e2e_settings: Settings, github: FakeGitHub, remotes: Remotes, test_image: str):
    principal = person_with_repo(store, e2e_settings, github, remotes, test_image, IntegrationProvider.LINEAR)
    return principal


def test_delegated_issue_to_pull_request(
    tmp_path: Path,
    e2e_gateway: LiveServer,
    e2e_settings: Settings,
    webhook_secret: str,
    fake_linear: FakeLinear,
    github: FakeGitHub,
    store: Store,
    database_url: str,
    queue: RunQueue,
    runner_settings: Settings,
    test_image: str,
    ada_with_github,
    reporter_process: None,
) -> None:
    deliver = LinearDelivery(f"{e2e_gateway.url}/linear/webhook", webhook_secret)
    body = payload("agent_session_event.created.delegated")
    assert deliver.post(body).status_code == 200
    assert deliver.post(body).status_code == 200  # a redelivery
    first = wait_for(lambda: fake_linear.activities(DELEGATED_SESSION), timeout=10, what="the first thought")
    assert first[0]["type"] == "thought"

    worker = start_agent_worker(tmp_path, database_url, queue, runner_settings, test_image)
    try:
        wait_for(lambda: all_runs(store) and all_runs(store)[0].state in TERMINAL_STATES, timeout=90, what="the run")
        assert [r.state for r in all_runs(store)] == [RunState.SUCCEEDED]
        pr_url = github.pulls[0]["html_url"]
        response = wait_for(
            lambda: [a for a in fake_linear.activities(DELEGATED_SESSION) if a["type"] == "response"],
            timeout=20,
            what="the closing response",
        )
    finally:
        worker.terminate()
        worker.wait(30)

    activities = fake_linear.activities(DELEGATED_SESSION)
    actions = [a for a in activities if a["type"] == "action"]
    assert {"type": "action", "action": "Running", "parameter": "cat README.md"} in actions
    assert any(a["action"] == "Editing" and a["parameter"].endswith("README.md") for a in actions)
    assert all(a.get("body") or a.get("action") for a in activities)  # never an empty activity
    assert len(response) == 1 and pr_url in response[0]["body"]
    attached = fake_linear.calls("attachmentLinkGitHubPR")
    assert [(c.variables["issueId"], c.variables["url"]) for c in attached] == [(ISSUE, pr_url)]
    links = [c.variables["input"] for c in fake_linear.calls("agentSessionUpdate")]
    assert {"addedExternalUrls": [{"label": "Pull request", "url": pr_url}]} in links
    assert len(all_runs(store)) == 1


def test_a_run_crossing_its_budget_is_stopped_with_an_error_activity(
    tmp_path: Path,
    e2e_gateway: LiveServer,
    e2e_settings: Settings,
    webhook_secret: str,
    fake_linear: FakeLinear,
    store: Store,
    database_url: str,
    queue: RunQueue,
    runner_settings: Settings,
    test_image: str,
    ada_with_github,
    reporter_process: None,
) -> None:
    with store.session() as session:  # the team's $1 runs out under the run ($0.50 a container-second)
        budgets.set_budget(session, ada_with_github.team_uid, budgets.TEAM, 1.0)
    deliver = LinearDelivery(f"{e2e_gateway.url}/linear/webhook", webhook_secret)
    assert deliver.post(payload("agent_session_event.created.delegated")).status_code == 200
    worker = start_agent_worker(
        tmp_path, database_url, queue, runner_settings, test_image, "sleep.sh", **COSTLY_CONTAINERS
    )
    try:
        wait_for(lambda: all_runs(store) and all_runs(store)[0].state in TERMINAL_STATES, timeout=90, what="the run")
        errors = wait_for(
            lambda: [a for a in fake_linear.activities(DELEGATED_SESSION) if a["type"] == "error"],
            timeout=20,
            what="the error activity",
        )
    finally:
        worker.terminate()
        worker.wait(30)
    [run] = all_runs(store)
    assert run.state == RunState.FAILED and run.status_message.error_code == "budget_exceeded"
    body = errors[-1]["body"]
    assert "The run was stopped at its spending limit" in body
    assert "what was left of the team's monthly budget ($1.00)" in body and "`budget_exceeded`" in body
    assert "Took " in body and "cost $1." in body
