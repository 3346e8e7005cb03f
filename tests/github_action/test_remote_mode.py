"""Remote mode: the step creates the run on the gateway with the agent key and follows it,
keeping one sticky comment on the issue, then sets outputs and its exit code."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from oz_agent_sdk import OzAPI, UnprocessableEntityError

from core import budgets, environments
from core.accounts import account_by_email
from core.agents import default_agent
from core.github_orgs import enable_org
from core.keys import create_key
from core.queue import RunQueue
from core.settings import Settings
from core.store import Store
from tests.fakes.github import FakeGitHub
from tests.live_server import LiveServer
from tests.runner_support import APP_ID, COSTLY_CONTAINERS, Person, Remotes, worker_env
from tests.support.github_action import REPO, fixture
from tests.support.people import AGENT_LIMIT


@pytest.fixture
def agent_key(store: Store, alice: Person) -> str:
    with store.session() as session:
        agent = default_agent(session, alice.principal.team_uid, AGENT_LIMIT)
        enable_org(session, alice.principal.team_uid, "Codertocat")
        return create_key(
            session,
            account_by_email(session, alice.principal.email),
            "gha",
            agent_uid=agent.uid,
            agent_limit=AGENT_LIMIT,
        )[1]


@pytest.fixture
def environment_id(store: Store, alice: Person, test_image: str) -> str:
    with store.session() as session:
        return environments.create_environment(
            session, alice.principal, name="hello", docker_image=test_image, repos=[REPO]
        ).uid


def start_worker(
    tmp_path: Path,
    database_url: str,
    queue: RunQueue,
    runner_settings: Settings,
    test_image: str,
    agent: str,
    **extra: str,
) -> subprocess.Popen:
    env = worker_env(
        database_url,
        queue.queue.name,
        tmp_path / "worker",
        test_image,
        agent,
        OZGW_GITHUB_API_URL=runner_settings.github_api_url,
        OZGW_GITHUB_CLONE_URL=runner_settings.github_clone_url,
        OZGW_GITHUB_APP_ID=APP_ID,
        OZGW_GITHUB_APP_PRIVATE_KEY=runner_settings.github_app_private_key.get_secret_value(),
        OZGW_HEARTBEAT_SECONDS="0.5",
        **extra,
    )
    env["OZGW_COMMAND_HARNESS_FORMAT"] = "claude" if agent == "edit.sh" else "text"
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 - kept open for the worker's lifetime
    return subprocess.Popen([sys.executable, "-m", "cli", "worker"], env=env, stdout=log, stderr=log)


@pytest.fixture
def worker(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    database_url: str,
    queue: RunQueue,
    runner_settings: Settings,
    test_image: str,
) -> Iterator[None]:
    agent = getattr(request, "param", "edit.sh")
    process = start_worker(tmp_path, database_url, queue, runner_settings, test_image, agent)
    yield
    process.terminate()
    process.wait(30)


def remote_env(gateway: LiveServer, key: str, environment_id: str, token: str) -> dict[str, str]:
    return {
        "OZ_API_KEY": key,
        "OZ_GATEWAY_URL": gateway.api_url,
        "OZ_ENVIRONMENT_ID": environment_id,
        "GITHUB_TOKEN": token,
    }


def comment_event(body: str, login: str = "Codertocat") -> dict:
    payload = fixture("issue_comment.created")
    payload["comment"]["body"] = body
    payload["comment"]["user"]["login"] = login
    return payload


def test_a_mention_runs_through_to_the_pull_request(
    gateway: LiveServer,
    github: FakeGitHub,
    action_repo: str,
    agent_key: str,
    environment_id: str,
    worker,
    run_step,
    remotes: Remotes,
):
    step = run_step(
        "issue_comment",
        comment_event("@oz fix the spelling error in the README"),
        remote_env(gateway, agent_key, environment_id, action_repo),
    )
    assert step.code == 0, step.stdout
    assert f"::add-mask::{agent_key}" in step.stdout and f"::add-mask::{action_repo}" in step.stdout
    assert step.outputs["state"] == "SUCCEEDED"
    pull = github.pulls[0]
    assert step.outputs["pr_url"] == pull["html_url"]
    assert step.outputs["session_link"].endswith(f"/console/runs/{step.outputs['run_id']}")  # a page people read
    # One sticky comment, edited as the run moved, ending with the PR.
    ours = [c for c in github.comments_on(REPO, 1) if "oz-gateway-run" in c["body"]]
    assert len(ours) == 1
    assert len(github.comment_edits.get(ours[0]["id"], [])) >= 1
    assert "Oz finished" in ours[0]["body"] and pull["html_url"] in ours[0]["body"]
    assert pull["html_url"] in step.summary
    # The run: started by the agent key, from the Action, pointing back at the comment.
    client = OzAPI(api_key=agent_key, base_url=gateway.api_url, max_retries=0)
    run = client.agent.runs.retrieve(step.outputs["run_id"])
    assert run.source == "GITHUB_ACTION" and run.executor.type == "service_account"
    assert run.trigger_url == fixture("issue_comment.created")["comment"]["html_url"]
    assert "fix the spelling error in the README" in run.prompt
    assert "Spelling error in the README file" in run.prompt  # the issue's title
    assert "octocat wrote:" in run.prompt  # an earlier comment, attributed
    with pytest.raises(UnprocessableEntityError):
        client.agent.runs.cancel(run.run_id)


def test_a_comment_without_the_trigger_starts_nothing(
    gateway: LiveServer, github: FakeGitHub, action_repo: str, agent_key: str, environment_id: str, run_step
):
    step = run_step(
        "issue_comment", fixture("issue_comment.created"), remote_env(gateway, agent_key, environment_id, action_repo)
    )
    assert step.code == 0
    assert "::notice::Oz: nothing to do (the comment does not mention @oz)" in step.stdout
    assert step.outputs["state"] == "SKIPPED"
    assert list(OzAPI(api_key=agent_key, base_url=gateway.api_url).agent.runs.list()) == []
    assert len(github.comments_on(REPO, 1)) == 1  # only the earlier one


def test_bots_and_edits_are_ignored(
    gateway: LiveServer, action_repo: str, agent_key: str, environment_id: str, run_step
):
    env = remote_env(gateway, agent_key, environment_id, action_repo)
    bot = comment_event("@oz do it", login="dependabot[bot]")
    bot["comment"]["user"]["type"] = "Bot"
    assert run_step("issue_comment", bot, env).outputs["state"] == "SKIPPED"
    edited = fixture("issue_comment.edited")
    edited["comment"]["body"] = "@oz do it"
    assert run_step("issue_comment", edited, env).outputs["state"] == "SKIPPED"


def test_people_without_write_access_are_refused_with_a_comment(
    gateway: LiveServer, github: FakeGitHub, action_repo: str, agent_key: str, environment_id: str, run_step
):
    step = run_step(
        "issue_comment",
        comment_event("@oz delete everything", login="stranger"),
        remote_env(gateway, agent_key, environment_id, action_repo),
    )
    assert step.code == 0 and step.outputs["state"] == "REFUSED"
    last = github.comments_on(REPO, 1)[-1]["body"]
    assert last == "@stranger Oz only takes requests from people with write access to Codertocat/Hello-World."
    assert list(OzAPI(api_key=agent_key, base_url=gateway.api_url).agent.runs.list()) == []


@pytest.mark.parametrize("worker", ["crash.sh"], indirect=True)
def test_a_failed_run_fails_the_step_and_says_why(
    gateway: LiveServer, github: FakeGitHub, action_repo: str, agent_key: str, environment_id: str, worker, run_step
):
    step = run_step(
        "issue_comment", comment_event("@oz fix it"), remote_env(gateway, agent_key, environment_id, action_repo)
    )
    assert step.code == 1
    assert step.outputs["state"] == "ERROR" and step.outputs["pr_url"] == ""
    assert "::error::Oz run" in step.stdout and "agent process exited unexpectedly" in step.stdout
    ours = next(c for c in github.comments_on(REPO, 1) if "oz-gateway-run" in c["body"])
    assert "Error code: `agent_process_failed`" in ours["body"]


def test_a_spent_budget_is_said_on_the_issue_and_fails_the_step(
    gateway: LiveServer,
    github: FakeGitHub,
    action_repo: str,
    agent_key: str,
    environment_id: str,
    run_step,
    store: Store,
    alice: Person,
    queue: RunQueue,
):
    with store.session() as session:  # agent-key runs draw on the team's budget
        budgets.set_budget(session, alice.principal.team_uid, budgets.TEAM, 0.0)
    step = run_step(
        "issue_comment", comment_event("@oz fix it"), remote_env(gateway, agent_key, environment_id, action_repo)
    )
    assert step.code == 1 and step.outputs["state"] == "REFUSED"
    last = github.comments_on(REPO, 1)[-1]["body"]
    assert last.startswith("@Codertocat Oz could not start a run. The team's monthly budget is spent")
    assert "$0.00 of the team's $0.00 monthly budget is spent" in last and last.endswith("(`budget_exceeded`)")
    assert "::error::Oz could not start a run (budget_exceeded)" in step.stdout
    assert list(OzAPI(api_key=agent_key, base_url=gateway.api_url).agent.runs.list()) == []
    assert queue.queue.count == 0


def test_a_run_stopped_at_its_budget_fails_the_step_and_the_comment_says_why(
    tmp_path: Path,
    gateway: LiveServer,
    github: FakeGitHub,
    action_repo: str,
    agent_key: str,
    environment_id: str,
    run_step,
    store: Store,
    alice: Person,
    database_url: str,
    queue: RunQueue,
    runner_settings: Settings,
    test_image: str,
):
    with store.session() as session:
        budgets.set_budget(session, alice.principal.team_uid, budgets.TEAM, 1.0)
    worker = start_worker(tmp_path, database_url, queue, runner_settings, test_image, "sleep.sh", **COSTLY_CONTAINERS)
    env = remote_env(gateway, agent_key, environment_id, action_repo)
    try:
        step = run_step("issue_comment", comment_event("@oz think hard"), env)
    finally:
        worker.terminate()
        worker.wait(30)
    assert step.code == 1 and step.outputs["state"] == "FAILED"
    assert "::error::Oz run" in step.stdout and "stopped at its spending limit" in step.stdout
    ours = next(c for c in github.comments_on(REPO, 1) if "oz-gateway-run" in c["body"])
    assert "Error code: `budget_exceeded`" in ours["body"]
    assert "what was left of the team's monthly budget ($1.00)" in ours["body"]
    assert "Took " in ours["body"] and "cost $1." in ours["body"]
