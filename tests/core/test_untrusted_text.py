"""The agent's words reach each surface inert: on GitHub and Linear an ``@name`` it wrote pages
nobody; on Slack its ``<!channel>``, ``<@U…>`` and ``<url|label>`` show as typed."""

from __future__ import annotations

from datetime import UTC, datetime

from bots.github.reporter import render
from bots.linear.reporter import closing
from bots.slack.messages import final, status
from core.models import RunItem, RunState
from core.settings import Settings

NOW = datetime(2026, 12, 1, tzinfo=UTC)
CODE = "internal_error"
STEERED = "Done. @acme/security and @ada please review; mail ops@acme.dev. <!channel> <https://evil.example|GitHub>"


def run(state: RunState, message: str, title: str = "Fix <!here> it") -> RunItem:
    return RunItem.model_validate(
        {
            "run_id": "r" * 36,
            "task_id": "r" * 36,
            "title": title,
            "prompt": "x",
            "state": state,
            "created_at": NOW,
            "updated_at": NOW,
            "status_message": {
                "message": message,
                "error_code": None if state == RunState.SUCCEEDED else "internal_error",
            },
        }
    )


def test_the_github_comment_and_the_linear_response_page_nobody():
    for body in (
        render(run(RunState.SUCCEEDED, STEERED), NOW),
        closing(Settings(), run(RunState.FAILED, STEERED), [])[1],
    ):
        assert "@acme/" not in body and " @ada" not in body
        assert "acme/security and ada please review" in body and "ops@acme.dev" in body  # emails untouched


def test_slack_shows_the_agents_markup_as_text_in_every_state():
    for state in (RunState.SUCCEEDED, RunState.FAILED, RunState.INPROGRESS):
        item = run(state, ("Working: " if state == RunState.INPROGRESS else "") + STEERED)
        for text, blocks in (final(item), status(item, "https://oz.example/run")):
            said = text + str(blocks)
            assert "<!channel>" not in said and "<!here>" not in said and "<https://evil" not in said
        assert "<https://oz.example/run|run rrrrrrrr>" in str(status(item, "https://oz.example/run")[1])  # ours: live


def test_slack_says_a_run_is_retrying_rather_than_only_queued():
    item = run(RunState.QUEUED, "Retrying (1 of 2) after: GitHub did not answer: ReadTimeout")
    text, blocks = status(item, "https://oz.example/run")
    assert "Retrying (1 of 2) after: GitHub did not answer" in text + str(blocks)
    assert status(run(RunState.QUEUED, ""), None)[0] == "On it"  # a plain queued run says no more
