"""What runs cost, executed for real: tokens priced from the agent's own stream and container
time, a run stopped when it crosses its ``max_cost`` or what its budget has left, and a queued
run refused when its budget was spent while it waited."""

from __future__ import annotations

import json
import shlex
import time

import docker
import pytest

from core import budgets, runs
from core.models.wire import RunAgentRequest
from core.prices import ModelPrice, PriceTable
from core.store import Store
from runner.context import WorkerContext
from runner.job import run_job
from runner.sandbox import containers_of
from tests.runner_support import Person, with_settings
from tests.support.people import AGENT_LIMIT

TURN = {
    "type": "turn.completed",
    "usage": {"input_tokens": 200_000, "cached_input_tokens": 100_000, "output_tokens": 50_000},
}
ANSWER = {"type": "item.completed", "item": {"type": "agent_message", "text": "Triaged."}}
PRICES = PriceTable(models={"gpt-5": ModelPrice(input=1.25, output=10.0, cached_input=0.125)}, container_minute=0.6)
TURN_COST = (100_000 * 1.25 + 100_000 * 0.125 + 50_000 * 10.0) / 1_000_000  # $0.6375


def agent_printing(ctx: WorkerContext, *lines: dict, then: str = "", **settings: object) -> WorkerContext:
    """A ``command`` agent that prints Codex's JSON stream (the real parser reads it), then ``then``."""
    script = "; ".join([*(f"echo {shlex.quote(json.dumps(line))}" for line in lines), *([then] if then else [])])
    return with_settings(
        ctx,
        **{
            "command_harness": shlex.join(["/bin/sh", "-c", script]),
            "command_harness_format": "codex",
            "prices": PRICES.model_dump(),
            "cost_check_seconds": 0.2,
            **settings,
        },
    )


def start(store: Store, alice: Person, env_id: str, **config: object) -> str:
    request = RunAgentRequest(prompt="Triage", config={"environment_id": env_id, "model_id": "gpt-5", **config})
    return runs.create(store, None, alice.principal, request, agent_limit=AGENT_LIMIT).run.run_id


def load(store: Store, run_id: str):
    with store.reader() as session:
        return runs.load_run(session, run_id)


def test_a_run_costs_its_priced_tokens_and_its_container_time(
    ctx: WorkerContext, runner_alice: Person, make_env, store: Store
):
    worker = agent_printing(ctx, TURN, ANSWER)
    run_id = start(store, runner_alice, make_env())
    assert run_job(worker, run_id) == "SUCCEEDED"
    run = load(store, run_id)
    [used] = run.usage
    assert (used.model, used.input_tokens, used.output_tokens, used.cached_input_tokens) == (
        "gpt-5",
        200_000,
        50_000,
        100_000,
    )
    assert used.priced_usd == pytest.approx(TURN_COST)
    assert run.inference_cost_usd == pytest.approx(TURN_COST)
    assert run.run_time_seconds > 0
    assert run.compute_cost_usd == pytest.approx(run.run_time_seconds / 60 * 0.6, abs=1e-6)
    with store.reader() as session:  # what the person's budget has spent is this run's cost
        spent = budgets.spent(session, run.team_uid, runner_alice.principal.uid, budgets.month_start())
    assert spent == pytest.approx(TURN_COST + run.compute_cost_usd, abs=1e-6)


def test_a_run_crossing_its_max_cost_is_stopped_mid_run(
    ctx: WorkerContext, runner_alice: Person, make_env, store: Store, docker_client: docker.DockerClient
):
    worker = agent_printing(ctx, TURN, then="sleep 600")  # the turn's tokens cross the cap; it would go on
    run_id = start(store, runner_alice, make_env(), max_cost=0.5)
    began = time.monotonic()
    assert run_job(worker, run_id) == "FAILED"
    assert time.monotonic() - began < 30  # not the ten minutes the agent meant to take
    run = load(store, run_id)
    assert run.status_message.error_code == "budget_exceeded"
    assert "the run's max_cost: $0.50" in run.status_message.message
    assert run.inference_cost_usd == pytest.approx(TURN_COST)  # what it used is kept
    assert run.usage[0].output_tokens == 50_000
    assert containers_of(docker_client, run_id) == []


def test_a_run_is_stopped_when_the_teams_budget_runs_out_under_it(
    ctx: WorkerContext, runner_alice: Person, make_env, store: Store, docker_client: docker.DockerClient
):
    """No tokens at all: the container's time alone (here $6 a minute) spends the team's $0.30."""
    worker = agent_printing(ctx, then="sleep 600", prices={"container_minute": 6.0})
    with store.session() as session:
        budgets.set_budget(session, runner_alice.principal.team_uid, budgets.TEAM, 0.30)
    run_id = start(store, runner_alice, make_env())
    assert run_job(worker, run_id) == "FAILED"
    run = load(store, run_id)
    assert run.status_message.error_code == "budget_exceeded"
    assert "what was left of the team's monthly budget ($0.30)" in run.status_message.message
    assert 0.30 <= run.compute_cost_usd < 0.30 + 6.0 / 60 * 3  # stopped within a few checks of the line
    assert containers_of(docker_client, run_id) == []


def test_a_queued_run_whose_budget_was_spent_meanwhile_fails_without_a_container(
    ctx: WorkerContext, runner_alice: Person, make_env, store: Store, docker_client: docker.DockerClient
):
    run_id = start(store, runner_alice, make_env())
    with store.session() as session:  # while it waited, the person's budget was set below what they spent
        budgets.set_budget(session, runner_alice.principal.team_uid, runner_alice.principal.uid, 0.0)
    assert run_job(agent_printing(ctx, TURN, ANSWER), run_id) == "FAILED"
    run = load(store, run_id)
    assert run.status_message.error_code == "insufficient_credits"
    assert "$0.00 of your $0.00 monthly budget is spent" in run.status_message.message
    assert run.started_at is None and run.usage == []
    assert containers_of(docker_client, run_id) == []
