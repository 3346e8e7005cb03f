"""What the agent used appears in every surface's closing words: Slack's closing post, Linear's
final response and the GitHub sticky comment all render it from the run the API returns."""

from __future__ import annotations

from datetime import UTC, datetime

from bots.github.reporter import render
from bots.linear.reporter import closing
from bots.slack.messages import final
from core.models import RunItem, RunState
from core.run_items import usage_line
from core.settings import Settings

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def finished(usage: list[dict] | None, cost: float | None = None) -> RunItem:
    return RunItem.model_validate(
        {
            "run_id": "r" * 36,
            "task_id": "r" * 36,
            "title": "Fix the README",
            "prompt": "Fix the README",
            "state": RunState.SUCCEEDED,
            "created_at": NOW,
            "updated_at": NOW,
            "status_message": {"message": "Updated README.md."},
            "usage": usage,
            "request_usage": {"inference_cost_usd": cost} if cost is not None else None,
        }
    )


def test_the_line_names_each_model_and_the_cost_when_known():
    run = finished(
        [
            {"model": "claude-a", "input_tokens": 4800, "output_tokens": 320},
            {"model": "claude-b", "input_tokens": 1200, "output_tokens": 80},
        ],
        cost=0.0256,
    )
    assert usage_line(run) == (
        "Used 4,800 input / 320 output tokens (claude-a); 1,200 input / 80 output tokens (claude-b) · about $0.03"
    )
    assert usage_line(finished(None)) is None


def test_every_surface_shows_it():
    run = finished([{"model": "gpt-x", "input_tokens": 10, "output_tokens": 2}])
    line = "Used 10 input / 2 output tokens (gpt-x)"
    _text, blocks = final(run)
    assert line in str(blocks)
    assert line in render(run, NOW)
    kind, body = closing(Settings(), run, [])
    assert kind == "response" and body.endswith(line)
