"""What the agent is given as MCP servers: its cloud agent's, then the run's own (which carry
its integration's), a later server replacing an earlier one of the same name; credentials named
``${NAME}`` taken from the run's variables and managed secrets — and masked wherever a person
reads; a name no secret defines fails the run before any container starts, naming it.

The operator's command harness shows what every driver is handed (``$OZ_MCP_CONFIG``, the Oz
CLI's ``--mcp`` file); each real CLI's own shape is ``tests/runner/test_mcp_real_agents.py``."""

from __future__ import annotations

import json

import pytest

from core import agents, managed_secrets, runs
from core.errors import OzError
from core.events import EventKind, transcript
from core.models.wire import AgentCreateRequest, RunAgentRequest
from core.store import Store
from core.vault import Vault
from runner.context import WorkerContext
from runner.job import run_job
from tests.runner_support import Person, with_settings
from tests.support.people import AGENT_LIMIT


def shown_config(store: Store, run_id: str) -> tuple[dict, str]:
    """What the agent printed of ``$OZ_MCP_CONFIG`` (one JSON document over several lines), and
    how many times the raw secret is in that file."""
    with store.reader() as session:
        lines = [e.text for e in transcript(session, run_id) if e.kind == EventKind.MESSAGE]
    return json.loads("\n".join(lines[:-1])), lines[-1]


@pytest.fixture
def ctx(ctx: WorkerContext) -> WorkerContext:
    show = 'cat "$OZ_MCP_CONFIG"; echo; echo found=$(grep -c docs-token-4f9a1c "$OZ_MCP_CONFIG")'
    return with_settings(ctx, command_harness=f"/bin/sh -c '{show}'", command_harness_format="text")


def test_the_agents_servers_then_the_runs_with_credentials_from_secrets_masked(
    ctx: WorkerContext, runner_alice: Person, make_env, store: Store
):
    vault = Vault.from_settings(ctx.settings)
    with store.session() as session:
        managed_secrets.put_secret(session, vault, runner_alice.principal, "DOCS_TOKEN", "docs-token-4f9a1c", "team")
        agent = agents.create_agent(
            session,
            runner_alice.principal,
            AgentCreateRequest(
                name="release-bot",
                secrets=[{"name": "DOCS_TOKEN"}],
                mcp_servers={
                    "docs": {
                        "url": "https://docs.internal.test/mcp",
                        "headers": {"Authorization": "Bearer ${DOCS_TOKEN}"},
                    },
                    "deploy": {"command": "deploy-mcp", "args": ["--old"]},
                },
            ),
            vault,
            limit=AGENT_LIMIT,
        )
    request = RunAgentRequest(
        prompt="Ship it",
        agent_identity_uid=agent.uid,
        config={"environment_id": make_env(), "mcp_servers": {"deploy": {"command": "deploy-mcp", "args": ["--new"]}}},
    )
    run_id = runs.create(store, None, runner_alice.principal, request, vault=vault, agent_limit=AGENT_LIMIT).run.run_id

    assert run_job(ctx, run_id) == "SUCCEEDED"
    given, found = shown_config(store, run_id)
    assert given["deploy"] == {"command": "deploy-mcp", "args": ["--new"]}  # the run's replaced the agent's
    assert given["docs"]["url"] == "https://docs.internal.test/mcp"
    # The secret reached the container (the file holds it once) and the transcript masks it.
    assert found == "found=1"
    assert given["docs"]["headers"]["Authorization"] == "********"


def test_a_credential_no_secret_defines_fails_the_run_naming_it(
    ctx: WorkerContext, runner_alice: Person, make_env, store: Store
):
    server = {"url": "https://sentry.internal.test/mcp", "headers": {"Authorization": "Bearer ${SENTRY_TOKEN}"}}
    request = RunAgentRequest(prompt="Triage", config={"environment_id": make_env(), "mcp_servers": {"sentry": server}})
    vault = Vault.from_settings(ctx.settings)
    run_id = runs.create(store, None, runner_alice.principal, request, vault=vault, agent_limit=AGENT_LIMIT).run.run_id

    assert run_job(ctx, run_id) == "FAILED"
    with store.reader() as session:
        run = runs.load_run(session, run_id)
    assert run.status_message.error_code == "environment_setup_failed"
    assert "SENTRY_TOKEN" in run.status_message.message


def test_a_warp_shared_server_is_refused_when_the_run_is_asked_for(runner_alice: Person, store: Store):
    request = RunAgentRequest(prompt="Triage", config={"mcp_servers": {"github": {"warp_id": "1deb1b14"}}})
    with pytest.raises(OzError, match="Warp-shared server"):
        runs.create(store, None, runner_alice.principal, request, agent_limit=AGENT_LIMIT)
