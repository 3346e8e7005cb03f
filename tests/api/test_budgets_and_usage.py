"""Budgets, usage and scheduled agents over the REST API: a spent budget is a problem+json
refusal that creates and enqueues nothing; ``GET /api/v1/usage`` reconciles with the runs the
API lists; ``/api/v1/agent/schedules`` manages schedules (our extensions, in the OpenAPI
document)."""

from __future__ import annotations

import httpx
import pytest
from oz_agent_sdk import PermissionDeniedError

from core import budgets, environments, runs
from core.accounts import account_by_email
from core.agents import default_agent
from core.keys import create_key
from core.models import ModelUsage, RunState
from core.prices import PriceTable
from core.queue import RunQueue
from core.store import Store
from tests.live_server import LiveServer
from tests.support.people import AGENT_LIMIT, Person

PRICES = PriceTable()


def headers(person: Person) -> dict[str, str]:
    return {"Authorization": f"Bearer {person.key}"}


def agent_key(store: Store, person: Person) -> str:
    with store.session() as session:
        agent = default_agent(session, person.account.team_uid, AGENT_LIMIT)
        account = account_by_email(session, person.account.email)
        return create_key(session, account, "ci", agent_uid=agent.uid, agent_limit=AGENT_LIMIT)[1]


def test_a_spent_budget_refuses_the_run_as_problem_json_and_creates_nothing(
    gateway: LiveServer, store: Store, queue: RunQueue, alice: Person, make_person
):
    team = alice.account.team_uid
    with store.session() as session:
        budgets.set_budget(session, team, alice.account.uid, 0.0)
    with pytest.raises(PermissionDeniedError) as refused:
        alice.client.agent.run(prompt="Fix the flaky test")
    body = refused.value.body
    assert body["status"] == 403 and body["type"].endswith("/insufficient-credits/")
    assert body["title"] == "Your monthly budget is spent"
    assert "$0.00 of your $0.00 monthly budget is spent" in body["detail"] and body["retryable"] is False
    raw = httpx.post(f"{gateway.api_url}/agent/runs", json={"prompt": "again"}, headers=headers(alice))
    assert raw.status_code == 403 and raw.headers["content-type"].startswith("application/problem+json")

    # Another person of the team, and the team's agent key, are not held by Alice's budget.
    bob = make_person("bob@example.com")
    assert bob.client.agent.run(prompt="Bob's run").state == "QUEUED"
    key = agent_key(store, alice)
    ci = httpx.post(f"{gateway.api_url}/agent/runs", json={"prompt": "CI"}, headers={"Authorization": f"Bearer {key}"})
    assert ci.status_code == 200

    # The team's budget holds everyone, agent keys included.
    with store.session() as session:
        budgets.clear_budget(session, team, alice.account.uid)
        budgets.set_budget(session, team, budgets.TEAM, 0.0)
    ci = httpx.post(f"{gateway.api_url}/agent/runs", json={"prompt": "CI"}, headers={"Authorization": f"Bearer {key}"})
    assert ci.status_code == 403 and ci.json()["type"].endswith("/budget-exceeded/")
    with pytest.raises(PermissionDeniedError, match="The team's monthly budget is spent"):
        bob.client.agent.run(prompt="Bob's second run")
    listed = list(alice.client.agent.runs.list())
    assert sorted(r.prompt for r in listed) == ["Bob's run", "CI"]  # only the runs that were accepted
    assert queue.queue.count == 2


def _execute(store: Store, run_id: str, usage: list[ModelUsage]) -> None:
    """What a worker records for a run: its usage, priced, and its container time at the end."""
    for state in (RunState.PENDING, RunState.CLAIMED, RunState.INPROGRESS):
        runs.transition(store, None, run_id, state)
    with store.session() as session:
        runs.record_usage(session, run_id, usage, PRICES)
    runs.transition(store, None, run_id, RunState.SUCCEEDED, prices=PRICES)


def test_usage_reconciles_with_the_runs_the_api_lists(gateway: LiveServer, store: Store, alice: Person, make_person):
    bob = make_person("bob@example.com")
    used = {
        alice: [
            [
                ModelUsage(
                    model="claude-sonnet-4-5", input_tokens=120_000, output_tokens=8_000, cached_input_tokens=40_000
                )
            ],
            [ModelUsage(model="gpt-5", input_tokens=50_000, output_tokens=2_000)],
        ],
        bob: [
            [
                ModelUsage(model="claude-sonnet-4-5", input_tokens=10_000, output_tokens=1_000),
                ModelUsage(model="mystery-model", input_tokens=1_000, output_tokens=1_000, cost_usd=0.5),
            ],
            [],  # a run whose agent reported nothing still cost its container time
        ],
    }
    for person, executions in used.items():
        for n, usage in enumerate(executions):
            run = person.client.agent.run(prompt=f"task {n}")
            _execute(store, run.run_id, usage)
    listed = list(alice.client.agent.runs.list())
    assert len(listed) == 4
    cost = sum((r.request_usage.inference_cost_usd or 0) + (r.request_usage.compute_cost_usd or 0) for r in listed)
    tokens_in = sum(u["input_tokens"] for r in listed for u in (r.model_extra or {}).get("usage") or [])
    assert cost > 0 and tokens_in == 181_000

    reports = {}
    for by in ("day", "source", "creator", "model"):
        response = httpx.get(f"{gateway.api_url}/usage", params={"by": by}, headers=headers(alice))
        assert response.status_code == 200, response.text
        reports[by] = response.json()
    for by, report in reports.items():
        total = report["total"]
        assert total["runs"] == 4 and total["input_tokens"] == tokens_in
        assert total["cost_usd"] == pytest.approx(cost, abs=1e-5)
        lines = report["lines"]
        if by == "model":  # the models' inference cost; container time is in the total only
            assert sum(line["inference_cost_usd"] for line in lines) == pytest.approx(total["inference_cost_usd"])
            assert sum(line["input_tokens"] for line in lines) == tokens_in
        else:
            assert sum(line["runs"] for line in lines) == 4
            assert sum(line["cost_usd"] for line in lines) == pytest.approx(total["cost_usd"], abs=1e-5)
    by_creator = {line["key"]: line["runs"] for line in reports["creator"]["lines"]}
    assert by_creator == {"alice@example.com": 2, "bob@example.com": 2}
    by_model = {line["key"]: line for line in reports["model"]["lines"]}
    assert set(by_model) == {"claude-sonnet-4-5", "gpt-5", "mystery-model"}
    assert by_model["mystery-model"]["inference_cost_usd"] == 0.5  # unpriced model: the CLI's own figure
    sonnet = (80_000 * 3 + 40_000 * 0.3 + 8_000 * 15 + 10_000 * 3 + 1_000 * 15) / 1e6
    assert by_model["claude-sonnet-4-5"]["inference_cost_usd"] == pytest.approx(sonnet)
    assert reports["source"]["lines"][0]["key"] == "API"

    bad = httpx.get(f"{gateway.api_url}/usage", params={"by": "planet"}, headers=headers(alice))
    assert bad.status_code == 400 and bad.headers["content-type"].startswith("application/problem+json")


def test_schedules_over_the_api(gateway: LiveServer, store: Store, alice: Person, make_person):
    with store.session() as session:
        env = environments.create_environment(session, _principal(alice), name="e", docker_image="x")
    url = f"{gateway.api_url}/agent/schedules"
    body = {"name": "Weekly deps", "cron": "0 9 * * 1", "timezone": "Europe/Paris", "prompt": "Bump deps"}
    created = httpx.post(url, json={**body, "environment_id": env.uid}, headers=headers(alice))
    assert created.status_code == 201, created.text
    item = created.json()
    assert item["status"] == "active"
    assert item["next_fire_at"][-9:] in ("08:00:00Z", "07:00:00Z")  # Monday 09:00 in Paris: CET or CEST
    uid = item["uid"]
    assert [s["uid"] for s in httpx.get(url, headers=headers(alice)).json()["schedules"]] == [uid]
    changed = httpx.patch(f"{url}/{uid}", json={"cron": "30 6 * * *", "timezone": "UTC"}, headers=headers(alice))
    assert changed.status_code == 200 and changed.json()["next_fire_at"].endswith("T06:30:00Z")
    paused = httpx.post(f"{url}/{uid}/pause", headers=headers(alice)).json()
    assert paused["status"] == "paused" and "next_fire_at" not in paused
    assert httpx.post(f"{url}/{uid}/resume", headers=headers(alice)).json()["status"] == "active"

    bad = httpx.post(url, json={**body, "cron": "every day", "environment_id": env.uid}, headers=headers(alice))
    assert bad.status_code == 400 and bad.json()["type"].endswith("/invalid-request/")
    assert "cron expression 'every day' is not valid" in bad.json()["detail"]
    both = httpx.post(url, json={**body, "skill": "a/b:c", "environment_id": env.uid}, headers=headers(alice))
    assert both.status_code == 400 and "a prompt or a skill" in both.text

    stranger = make_person("eve@elsewhere.example", team="elsewhere")
    assert httpx.get(f"{url}/{uid}", headers=headers(stranger)).status_code == 404
    assert httpx.get(url, headers=headers(stranger)).json() == {"schedules": []}
    assert httpx.delete(f"{url}/{uid}", headers=headers(alice)).status_code == 204
    assert httpx.get(f"{url}/{uid}", headers=headers(alice)).status_code == 404

    doc = httpx.get(f"{gateway.api_url}/openapi.json").json()
    assert {"get", "post"} <= set(doc["paths"]["/agent/schedules"])
    assert "get" in doc["paths"]["/usage"]


def _principal(person: Person):
    from core.models import Principal

    account = person.account
    return Principal(kind="user", uid=account.uid, team_uid=account.team_uid, email=account.email)
