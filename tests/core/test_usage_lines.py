"""How long a run took, what it cost and what its agent used appear in every surface's closing
words (Slack's closing post, Linear's final response, the GitHub sticky comment), and a queued
run's place in line in its status; all rendered from the run the API returns."""

from __future__ import annotations

from datetime import UTC, datetime

from bots.github.reporter import render
from bots.linear.reporter import closing
from bots.slack.messages import final, status
from core.models import RunItem, RunState
from core.run_items import queue_line, usage_line
from core.settings import Settings

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def finished(usage: list[dict] | None, cost: tuple[float, float] | None = None, run_time: str = "PT2M5S") -> RunItem:
    return RunItem.model_validate(
        {
            "run_id": "r" * 36,
            "task_id": "r" * 36,
            "title": "Fix the README",
            "prompt": "Fix the README",
            "state": RunState.SUCCEEDED,
            "created_at": NOW,
            "updated_at": NOW,
            "run_time": run_time,
            "status_message": {"message": "Updated README.md."},
            "usage": usage,
            "request_usage": {"inference_cost_usd": cost[0], "compute_cost_usd": cost[1]} if cost else None,
        }
    )


def test_the_line_gives_the_duration_the_cost_and_each_model():
    run = finished(
        [
            {"model": "claude-a", "input_tokens": 4800, "output_tokens": 320},
            {"model": "claude-b", "input_tokens": 1200, "output_tokens": 80},
        ],
        cost=(0.0256, 0.004),
    )
    assert usage_line(run) == (
        "Took 2m 05s · cost $0.03 · 4,800 input / 320 output tokens (claude-a) · 1,200 input / 80 output tokens "
        "(claude-b)"
    )
    assert usage_line(finished(None, cost=(0, 0.001), run_time="PT3S")) == "Took 3s · cost <$0.01"
    assert usage_line(finished(None).model_copy(update={"state": RunState.INPROGRESS})) is None


def test_every_surface_shows_it():
    run = finished([{"model": "gpt-x", "input_tokens": 10, "output_tokens": 2}], cost=(1.5, 0.25))
    line = "Took 2m 05s · cost $1.75 · 10 input / 2 output tokens (gpt-x)"
    _text, blocks = final(run)
    assert line in str(blocks)
    assert line in render(run, NOW)
    kind, body = closing(Settings(), run, [])
    assert kind == "response" and body.endswith(line)


def test_a_queued_run_shows_its_place_in_line():
    queued = finished(None).model_copy(update={"state": RunState.QUEUED, "queue_position": 3})
    assert queue_line(queued) == "3rd in line"
    assert queue_line(queued.model_copy(update={"queue_position": 1})) == "next in line"
    assert queue_line(queued.model_copy(update={"queue_position": 12})) == "12th in line"
    assert queue_line(queued.model_copy(update={"queue_position": 22})) == "22nd in line"
    _text, blocks = status(queued, None, NOW)
    assert "3rd in line" in str(blocks)
    assert "3rd in line" in render(queued, NOW)


def test_the_price_table_takes_the_longest_prefix_then_the_clis_figure_then_its_default():
    from core.models import ModelUsage
    from core.prices import PriceTable

    table = PriceTable()
    million = {"input_tokens": 1_000_000, "output_tokens": 1_000_000}
    assert table.model_cost(ModelUsage(model="claude-opus-4-1", **million)) == 90.0
    assert table.model_cost(ModelUsage(model="claude-sonnet-4-5-20250929", **million)) == 18.0
    assert table.model_cost(ModelUsage(model="gpt-5-mini-2025", **million)) == 2.25  # not gpt-5's
    assert table.model_cost(ModelUsage(model="gemini-3.8-flash", **million)) == 11.25  # the family's
    assert table.model_cost(ModelUsage(model="mystery", cost_usd=0.42, **million)) == 0.42  # the CLI's figure
    assert table.model_cost(ModelUsage(model="mystery", **million)) == 18.0  # never free
    cached = ModelUsage(model="claude-sonnet-4", input_tokens=1_000_000, cached_input_tokens=400_000)
    assert table.model_cost(cached) == 600_000 * 3.0 / 1e6 + 400_000 * 0.3 / 1e6
