"""An integration set to run as a cloud agent (``integration update linear --agent UID``): a Linear
mention starts a team run executed by that agent, with its prompt before the integration's
instructions, its harness, its first skill and its MCP servers — and a deleted agent is a clear
refusal in the session, not a run that fails later."""

from __future__ import annotations

import time

from sqlalchemy import select

from core import agents, integrations, runs
from core.models import IntegrationProvider, Principal
from core.models.wire import AgentCreateRequest
from core.store import Store
from core.store.tables import RunRow
from tests.fakes.linear import FakeLinear
from tests.support.linear import SESSION, LinearDelivery, payload
from tests.support.people import AGENT_LIMIT


def the_run(store: Store):
    deadline = time.time() + 10
    while time.time() < deadline:
        with store.reader() as session:
            run_id = session.scalar(select(RunRow.run_id))
            if run_id:
                return runs.load_run(session, run_id)
        time.sleep(0.05)
    raise AssertionError("no run started")


def make_agent(store: Store, who: Principal) -> str:
    with store.session() as session:
        agent = agents.create_agent(
            session,
            who,
            AgentCreateRequest(
                name="triage-bot",
                prompt="You are the triage bot: label, reproduce, then fix.",
                base_harness="claude",
                skills=["acme/playbooks:triage"],
                mcp_servers={"tracker": {"url": "https://tracker.internal.test/mcp"}},
            ),
            limit=AGENT_LIMIT,
        )
        integrations.update_integration(session, who, IntegrationProvider.LINEAR, agent_uid=agent.uid)
    return agent.uid


def test_a_linear_run_executes_as_the_integrations_agent_with_its_settings(
    deliver: LinearDelivery, fake_linear: FakeLinear, store: Store, ada: Principal, linear_integration: str
):
    agent_uid = make_agent(store, ada)
    assert deliver.post(payload("agent_session_event.created")).status_code == 200
    run = the_run(store)

    assert run.agent_uid == agent_uid and run.executor_kind == "service_account"
    assert run.creator_uid == ada.uid  # the person who asked is still who asked
    assert run.config.base_prompt.startswith("You are the triage bot")
    assert run.config.harness.type == "claude"
    assert run.skill_spec == "acme/playbooks:triage"
    assert "Keep changes small." in run.prompt  # the integration's own instructions still apply


def test_an_integration_whose_agent_was_deleted_refuses_in_the_session(
    deliver: LinearDelivery, fake_linear: FakeLinear, store: Store, ada: Principal, linear_integration: str
):
    agent_uid = make_agent(store, ada)
    with store.session() as session:
        agents.delete_agent(session, ada, agent_uid)
    assert deliver.post(payload("agent_session_event.created")).status_code == 200
    deadline = time.time() + 10
    while time.time() < deadline and not [a for a in fake_linear.activities(SESSION) if a["type"] == "error"]:
        time.sleep(0.05)
    [error] = [a for a in fake_linear.activities(SESSION) if a["type"] == "error"]
    assert "was deleted" in error["body"] and "--agent" in error["body"]
    with store.reader() as session:
        assert session.scalar(select(RunRow.run_id)) is None
