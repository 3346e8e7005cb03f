"""A mention in a Slack thread, run by the real Claude Code / Codex / Gemini CLI: the status
message shows the CLI's own steps as it works, the closing post the PR and what the agent used,
and the API shows the run's usage to the official SDK.  The real bolt app, worker and
reporter processes; Slack, GitHub and the model API are local fakes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from oz_agent_sdk import OzAPI

from core import identity, integrations
from core.accounts import create_account
from core.github_auth import save_authorization
from core.keys import create_key
from core.models import IntegrationProvider, Principal, RunState
from core.models.wire import TERMINAL_STATES
from core.prices import dollars
from core.queue import RunQueue
from core.settings import Settings
from core.store import Store
from core.vault import Vault
from tests.fakes.github import FakeGitHub
from tests.fakes.slack import TEAM, FakeSlack
from tests.live_server import LiveServer
from tests.real_agents import CLIS, readme_script
from tests.runner_support import Remotes, start_agent_worker
from tests.support.slack import ADA, SlackDelivery, all_runs, event
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(240)
CHANNEL, THREAD = "C0LAN2Q65", "1732320100.000200"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: the store backends are covered elsewhere; here the CLIs are the subject."""
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.mark.parametrize("cli", list(CLIS))
def test_a_thread_sees_the_real_clis_steps_and_usage(
    cli: str,
    tmp_path: Path,
    e2e_gateway: LiveServer,
    e2e_settings: Settings,
    signing_secret: str,
    fake_slack: FakeSlack,
    github: FakeGitHub,
    remotes: Remotes,
    store: Store,
    database_url: str,
    queue: RunQueue,
    reporter_process: None,
    model_api,
    model_env,
    agent_image: str,
) -> None:
    fake = model_api(cli, readme_script(cli, repo="web"))
    with store.session() as session:
        ada = create_account(session, "ada@acme.dev", "acme", display_name="Ada Lovelace")
        save_authorization(session, Vault.from_settings(e2e_settings), ada.uid, "ada-gh", github.add_user("ada-gh"))
        _key, api_key = create_key(session, ada, "sdk")
    person = Principal(kind="user", uid=ada.uid, team_uid=ada.team_uid, email=ada.email)
    env_id = model_env(person, e2e_settings, cli, fake, repos=["acme/web"])
    with store.session() as session:
        integrations.create_integration(session, person, IntegrationProvider.SLACK, environment_id=env_id)
        identity.link(session, IntegrationProvider.SLACK, TEAM, ADA, ada.uid)
    remotes.create("acme", "web")
    github.add_repo("acme", "web", collaborators={"ada-gh": "write"})

    SlackDelivery(f"{e2e_gateway.url}/slack/events", signing_secret).post(event("event.app_mention.thread"))
    worker = start_agent_worker(
        tmp_path,
        database_url,
        queue,
        e2e_settings,
        agent_image,
        OZGW_DEFAULT_HARNESS=cli,
        OZGW_CONTAINER_MEMORY="2g",
        OZGW_AGENT_MODEL_RETRIES="1",
        OZGW_EGRESS_ALLOW_PRIVATE="true",
    )
    try:
        run = wait_for(lambda: all_runs(store), what="the run")[0]
        wait_for(lambda: all_runs(store)[0].state in TERMINAL_STATES, timeout=180, what="the run to finish")
    finally:
        worker.terminate()
        worker.wait(30)
    assert [r.state for r in all_runs(store)] == [RunState.SUCCEEDED], (tmp_path / "worker.log").read_text()[-3000:]
    assert fake.problems == []

    # The status message showed the CLI's own steps while it worked, then the outcome.
    status = fake_slack.messages[run.origin.ref["status_ts"]]
    wait_for(lambda: "Done" in status.text, timeout=20, what="the status message to show the outcome")
    shown = json.dumps([e for e in status.edits])
    assert "Working" in shown and ("id -un; ls" in shown or "README.md" in shown), shown
    # The closing post: the agent's answer, the PR, how long it took, what it cost and used.
    final = wait_for(lambda: [m for m in fake_slack.in_thread(CHANNEL, THREAD) if m is not status], timeout=20)
    assert len(final) == 1
    assert "Updated README.md." in final[0].everything
    assert github.pulls[0]["html_url"] in final[0].everything
    assert "Took " in final[0].everything and " input / " in final[0].everything
    # The official SDK sees the usage on the run.
    client = OzAPI(api_key=api_key, base_url=e2e_gateway.api_url, max_retries=0)
    item = client.agent.runs.retrieve(run.run_id)
    usage = (item.model_extra or {}).get("usage") or []
    assert usage and sum(u["input_tokens"] for u in usage) >= 1200
    # Every CLI's tokens are priced (the table, or the default rate for a model it does not name).
    assert item.request_usage is not None and item.request_usage.inference_cost_usd > 0
    priced = sum(u["priced_usd"] for u in usage)
    assert item.request_usage.inference_cost_usd == pytest.approx(priced, abs=1e-6)
    assert f"cost {dollars(priced + item.request_usage.compute_cost_usd)}" in final[0].everything
