"""``oz-gateway schedule``, ``budget`` and ``usage`` as an operator types them."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import runs
from core.models import ModelUsage, RunState
from core.prices import PriceTable
from core.settings import Settings
from core.store import Store
from tests.support.cli import Cli


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "data")


def test_schedule_lifecycle_from_the_command_line(cli: Cli):
    cli("account", "create", "--email", "ops@example.com", "--team", "acme")
    who = ("--email", "ops@example.com")
    env = cli.json("environment", "create", *who, "-n", "web", "-d", "node:20")["uid"]
    made = cli.json(
        "schedule", "create", *who, "--name", "Monday deps", "--cron", "0 9 * * 1",
        "--timezone", "Europe/Paris", "--prompt", "Bump the dependencies", "--environment", env,
    )  # fmt: skip
    assert made["status"] == "active" and made["last_run"] == "never"
    listed = cli("schedule", "list", *who).stdout
    assert "Monday deps" in listed and "0 9 * * 1" in listed and "NEXT_FIRE_AT" in listed and "never" in listed
    assert cli.json("schedule", "pause", *who, made["uid"])["status"] == "paused"
    resumed = cli.json("schedule", "update", *who, made["uid"], "--cron", "15 7 * * *", "--timezone", "UTC")
    assert resumed["cron"] == "15 7 * * *" and resumed["next_fire_at"] == "-"  # still paused
    assert cli.json("schedule", "resume", *who, made["uid"])["next_fire_at"].endswith("07:15:00Z")
    refused = cli("schedule", "create", *who, "--name", "x", "--cron", "* *", "-p", "p", "-e", env, ok=False)
    assert refused.returncode == 1 and "invalid_request" in refused.stderr and "not valid" in refused.stderr
    cli("schedule", "delete", *who, made["uid"])
    assert "(none)" in cli("schedule", "list", *who).stdout


def test_budgets_and_usage_from_the_command_line(cli: Cli, tmp_path: Path):
    cli("account", "create", "--email", "ops@example.com", "--team", "acme")  # the team's first: its admin
    cli("account", "create", "--email", "dev@example.com", "--team", "acme")
    ops, dev = ("--email", "ops@example.com"), ("--email", "dev@example.com")
    refused = cli("budget", "set", "10", "--team", *dev, ok=False)
    assert "not_authorized" in refused.stderr and "only a team admin can set budgets" in refused.stderr
    cli("budget", "set", "100", "--team", *ops)
    shown = cli.json("budget", "set", "5", "--person", "dev@example.com", *ops)
    assert [(b["who"], b["monthly"], b["spent"]) for b in shown] == [
        ("team", "$100.00", "$0.00"),
        ("dev@example.com", "$5.00", "$0.00"),
    ]

    run_id = cli.json("run", *dev, "--prompt", "Fix the login bug")["run_id"]
    store = Store(Settings(data_dir=tmp_path / "data").effective_database_url)
    try:  # what a worker records for it
        for state in (RunState.PENDING, RunState.CLAIMED, RunState.INPROGRESS):
            runs.transition(store, None, run_id, state)
        with store.session() as session:
            usage = [ModelUsage(model="claude-sonnet-4", input_tokens=1_000_000, output_tokens=100_000)]
            runs.record_usage(session, run_id, usage, PriceTable())
        runs.transition(store, None, run_id, RunState.SUCCEEDED, prices=PriceTable())
    finally:
        store.dispose()

    spent = {b["who"]: b["spent_usd"] for b in cli.json("budget", "list", *ops)}
    assert spent["dev@example.com"] == pytest.approx(4.5, abs=0.01) == spent["team"]  # $3 in + $1.50 out
    report = cli.json("usage", "--by", "model", *ops)
    assert [(line["key"], line["input_tokens"]) for line in report["lines"]] == [("claude-sonnet-4", 1_000_000)]
    assert report["total"]["cost_usd"] == pytest.approx(spent["team"], abs=1e-6)
    table = cli("usage", "--by", "creator", *ops).stdout
    assert "dev@example.com" in table and "$4.50" in table and "total" in table

    again = cli("run", *dev, "--prompt", "One more", ok=False)  # $4.50 of $5: still room
    assert again.returncode == 0
    cli("budget", "set", "4", "--person", "dev@example.com", *ops)
    spent_out = cli("run", *dev, "--prompt", "And another", ok=False)
    assert spent_out.returncode == 1 and "insufficient_credits" in spent_out.stderr
    cli("budget", "clear", "--person", "dev@example.com", *ops)
    assert [b["who"] for b in cli.json("budget", "list", *ops)] == ["team"]
    assert cli("run", *dev, "--prompt", "Now it may").returncode == 0
