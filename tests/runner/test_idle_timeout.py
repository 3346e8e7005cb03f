"""A run's ``idle_timeout_minutes``: an agent that prints nothing for that long is stopped."""

from __future__ import annotations

from core import runs
from core.models.wire import RunAgentRequest
from core.store import Store
from runner.context import WorkerContext
from runner.job import run_job
from tests.runner_support import Person, with_settings
from tests.support.people import AGENT_LIMIT


def test_an_agent_quiet_past_its_idle_timeout_is_stopped(
    ctx: WorkerContext, runner_alice: Person, make_env, store: Store
):
    """``idle_timeout_minutes``: the agent printed once, then nothing for a minute — the run
    ends saying so, long before its maximum runtime."""
    quiet = with_settings(ctx, command_harness="/bin/sh -c 'echo looking; sleep 600'", max_runtime_seconds=300)
    request = RunAgentRequest(prompt="Look", config={"environment_id": make_env(), "idle_timeout_minutes": 1})
    run_id = runs.create(store, None, runner_alice.principal, request, agent_limit=AGENT_LIMIT).run.run_id

    assert run_job(quiet, run_id) == "ERROR"
    with store.reader() as session:
        run = runs.load_run(session, run_id)
    assert run.status_message.error_code == "infrastructure_timeout"
    assert "printed nothing for 1 min" in run.status_message.message
