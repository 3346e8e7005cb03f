"""A run's MCP server is the agent's tool, for real: each CLI (the pinned Claude Code, Codex and
Gemini CLI in the agent image) is given the run's server in its own way, starts it inside the
container — a tiny stdio server, ``node -e`` — and the scripted model calls its tool.  The
server's credential is a managed secret named as ``${DEPLOY_TOKEN}`` in the config: it reaches
the server (the tool's answer carries it back to the model) and nowhere a person reads."""

from __future__ import annotations

import json
import secrets

import pytest

from core import managed_secrets, runs
from core.events import EventKind, transcript
from core.models.wire import RunAgentRequest, RunItem
from core.run_items import render_item
from core.store import Store
from core.vault import Vault
from runner.context import WorkerContext
from runner.job import run_job
from tests.real_agents import CLIS, readme_script
from tests.runner_support import Person, with_settings
from tests.support.people import AGENT_LIMIT

pytestmark = pytest.mark.timeout(240)

ECHO_SERVER = r"""
const lines = require('readline').createInterface({input: process.stdin});
const send = (m) => process.stdout.write(JSON.stringify(m) + '\n');
const tool = {name: 'oz_echo', description: 'Asks the deploy server about a service.',
  inputSchema: {type: 'object', properties: {text: {type: 'string'}}, required: ['text']}};
lines.on('line', (line) => {
  let m; try { m = JSON.parse(line); } catch (e) { return; }
  if (m.id === undefined) return;
  const answer = (result) => send({jsonrpc: '2.0', id: m.id, result});
  if (m.method === 'initialize') answer({protocolVersion: m.params.protocolVersion,
    capabilities: {tools: {}}, serverInfo: {name: 'deploy', version: '1.0.0'}});
  else if (m.method === 'tools/list') answer({tools: [tool]});
  else if (m.method === 'tools/call') answer({content: [{type: 'text',
    text: 'deploy says ' + m.params.arguments.text + ' is green; token=' + process.env.ECHO_TOKEN}]});
  else if (m.method === 'ping') answer({});
  else send({jsonrpc: '2.0', id: m.id, error: {code: -32601, message: 'no method ' + m.method}});
});
"""


def shown(store: Store, run_id: str) -> RunItem:
    """The run as the API shows it."""
    with store.reader() as session:
        return render_item(session, runs.load_run(session, run_id))


@pytest.fixture
def ctx(ctx: WorkerContext) -> WorkerContext:
    return with_settings(ctx, container_memory="2g", agent_model_retries=1, egress_allow_private=True)


@pytest.mark.parametrize("cli", list(CLIS))
def test_the_runs_mcp_server_is_a_tool_the_agent_calls(
    cli: str, ctx: WorkerContext, alice: Person, store: Store, model_api, model_env
):
    token = "deploy-" + secrets.token_hex(8)
    with store.session() as session:
        vault = Vault.from_settings(ctx.settings)
        managed_secrets.put_secret(session, vault, alice.principal, "DEPLOY_TOKEN", token, "team")
    script = readme_script(cli, mcp_tool="oz_echo", mcp_text="checkout", expect=f"token={token}", answer="Green.")
    fake = model_api(cli, script)
    env_id = model_env(alice.principal, ctx.settings, cli, fake, repos=[], secret_names=["DEPLOY_TOKEN"])
    server = {"command": "node", "args": ["-e", ECHO_SERVER], "env": {"ECHO_TOKEN": "${DEPLOY_TOKEN}"}}
    request = RunAgentRequest(
        prompt="Ask the deploy server about checkout",
        config={
            "environment_id": env_id,
            "harness": {"type": cli, "model_id": CLIS[cli].model},
            "mcp_servers": {"deploy": server},
        },
    )
    run_id = runs.create(store, None, alice.principal, request, vault=vault, agent_limit=AGENT_LIMIT).run.run_id

    assert run_job(ctx, run_id) == "SUCCEEDED", shown(store, run_id).status_message
    assert fake.problems == []
    # The server ran in the container with the secret: its answer went back to the model.
    assert f"deploy says checkout is green; token={token}" in json.dumps(fake.main_requests[-1]["body"])
    with store.reader() as session:
        steps = transcript(session, run_id)
    calls = [e.tool for e in steps if e.kind == EventKind.TOOL_CALL]
    assert any("oz_echo" in (tool or "") for tool in calls), [(e.kind, e.tool, e.text) for e in steps]
    item = shown(store, run_id)
    assert token not in "\n".join(e.model_dump_json() for e in steps) + item.model_dump_json()
    assert item.agent_config.mcp_servers["deploy"].env == {"ECHO_TOKEN": "***"}
