"""Every recorded GitHub Actions event payload, classified with the inputs a workflow would give
(Zulip's way: one line per real payload, a trigger with what it asks for or a skip with why)."""

from __future__ import annotations

import pytest

from bots.github.triggers import ActionInputs, Skip, Trigger, classify
from tests.support.github_action import fixture

CONFIGURED = ActionInputs(assignee="octocat", label="bug", prompt="Fix the build")
EVENTS = [
    # (fixture, the X-GitHub-Event it arrives as, inputs, what it asks for — or why it is skipped)
    ("issue_comment.created", "issue_comment", ActionInputs(), "skip: the comment does not mention @oz"),
    ("issue_comment.edited", "issue_comment", ActionInputs(), "skip: comment edited: only new comments start runs"),
    ("issues.assigned", "issues", ActionInputs(), "skip: issues.assigned: configure `assignee` or `label`"),
    ("issues.assigned", "issues", CONFIGURED, "skip: assigned to Codertocat, not octocat"),
    ("issues.labeled", "issues", CONFIGURED, "Resolve issue #1: Spelling error in the README file"),
    ("pull_request.opened", "pull_request", CONFIGURED, "skip: the pull request does not mention @oz"),
    ("pull_request_review_comment.created", "pull_request_review_comment", ActionInputs(), "skip: the comment does"),
    ("workflow_dispatch", "workflow_dispatch", ActionInputs(), "skip: workflow_dispatch needs a `prompt` input"),
    ("workflow_dispatch", "workflow_dispatch", CONFIGURED, "Fix the build"),
]


@pytest.mark.parametrize(("name", "event", "inputs", "expected"), EVENTS)
def test_each_recorded_event(name: str, event: str, inputs: ActionInputs, expected: str) -> None:
    outcome = classify(event, fixture(name), inputs)
    if expected.startswith("skip: "):
        assert isinstance(outcome, Skip) and outcome.reason.startswith(expected.removeprefix("skip: ")), outcome
    else:
        assert isinstance(outcome, Trigger) and outcome.request == expected, outcome


def test_a_mention_in_each_commentable_payload_is_a_trigger() -> None:
    """The same payloads with the trigger phrase: each becomes the request that follows it."""
    for name, event, key in [
        ("issue_comment.created", "issue_comment", "comment"),
        ("pull_request_review_comment.created", "pull_request_review_comment", "comment"),
        ("pull_request.opened", "pull_request", "pull_request"),
    ]:
        payload = fixture(name)
        payload[key]["body"] = "@oz tighten the README wording"
        outcome = classify(event, payload, ActionInputs())
        assert isinstance(outcome, Trigger) and outcome.request == "tighten the README wording", (name, outcome)
