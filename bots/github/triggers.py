"""Which GitHub Actions events start a run, and what they ask for.

``classify`` has three outcomes, as Zulip's GitHub integration does: a :class:`Trigger`; a
:class:`Skip` with the reason (known event, nothing to do — the step exits 0 with a
notice); or :class:`UnsupportedEvent` for an event this action does not know.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel


class UnsupportedEvent(Exception):
    pass


@dataclass(frozen=True)
class ActionInputs:
    trigger_phrase: str = "@oz"
    assignee: str | None = None
    label: str | None = None
    prompt: str | None = None


@dataclass(frozen=True)
class Trigger:
    request: str
    author: str | None
    """Whose permission must be checked (``None`` for workflow_dispatch: the workflow ran it)."""
    number: int | None
    """The issue or PR number to report on."""
    is_pull_request: bool
    url: str | None
    review_comment_id: int | None = None


@dataclass(frozen=True)
class Skip:
    reason: str


class User(BaseModel):
    login: str
    type: str = "User"


class Comment(BaseModel):
    id: int
    body: str | None = None
    user: User
    html_url: str | None = None
    diff_hunk: str | None = None


class Issue(BaseModel):
    number: int
    title: str
    body: str | None = None
    html_url: str
    user: User
    pull_request: dict | None = None


class Label(BaseModel):
    name: str


def _is_bot(user: User) -> bool:
    return user.type == "Bot" or user.login.endswith("[bot]")


def _strip_phrase(text: str, phrase: str) -> str | None:
    """The request after the trigger phrase, or ``None`` when the phrase is absent."""
    pattern = re.compile(rf"(?<![\w@]){re.escape(phrase)}(?![\w-])", re.IGNORECASE)
    if not pattern.search(text):
        return None
    return pattern.sub("", text, count=1).strip() or text.strip()


def _comment(payload: dict, inputs: ActionInputs, *, review: bool) -> Trigger | Skip:
    if payload.get("action") != "created":
        return Skip(f"comment {payload.get('action')}: only new comments start runs")
    comment = Comment.model_validate(payload["comment"])
    if _is_bot(comment.user):
        return Skip(f"comment by the bot {comment.user.login}")
    request = _strip_phrase(comment.body or "", inputs.trigger_phrase)
    if request is None:
        return Skip(f"the comment does not mention {inputs.trigger_phrase}")
    if review:
        number, is_pr = payload["pull_request"]["number"], True
    else:
        issue = Issue.model_validate(payload["issue"])
        number, is_pr = issue.number, issue.pull_request is not None
    return Trigger(
        request, comment.user.login, number, is_pr, comment.html_url, review_comment_id=comment.id if review else None
    )


def on_issue_comment(payload: dict, inputs: ActionInputs) -> Trigger | Skip:
    return _comment(payload, inputs, review=False)


def on_review_comment(payload: dict, inputs: ActionInputs) -> Trigger | Skip:
    return _comment(payload, inputs, review=True)


def on_issues(payload: dict, inputs: ActionInputs) -> Trigger | Skip:
    issue = Issue.model_validate(payload["issue"])
    sender = User.model_validate(payload["sender"])
    action = payload.get("action")
    if action == "assigned" and inputs.assignee:
        assignee = User.model_validate(payload["assignee"])
        if assignee.login.lower() != inputs.assignee.lower():
            return Skip(f"assigned to {assignee.login}, not {inputs.assignee}")
    elif action == "labeled" and inputs.label:
        label = Label.model_validate(payload["label"])
        if label.name.lower() != inputs.label.lower():
            return Skip(f"labeled {label.name!r}, not {inputs.label!r}")
    else:
        return Skip(f"issues.{action}: configure `assignee` or `label` to start runs from issues")
    if _is_bot(sender):
        return Skip(f"{action} by the bot {sender.login}")
    request = f"Resolve issue #{issue.number}: {issue.title}"
    return Trigger(request, sender.login, issue.number, False, issue.html_url)


def on_pull_request(payload: dict, inputs: ActionInputs) -> Trigger | Skip:
    pull = payload["pull_request"]
    body = pull.get("body") or ""
    request = _strip_phrase(body, inputs.trigger_phrase)
    if payload.get("action") not in ("opened", "edited", "reopened") or request is None:
        return Skip(f"the pull request does not mention {inputs.trigger_phrase}")
    author = User.model_validate(pull["user"])
    if _is_bot(author):
        return Skip(f"pull request by the bot {author.login}")
    return Trigger(request, author.login, pull["number"], True, pull.get("html_url"))


def on_workflow_dispatch(payload: dict, inputs: ActionInputs) -> Trigger | Skip:
    prompt = (payload.get("inputs") or {}).get("prompt") or inputs.prompt
    if not prompt or not str(prompt).strip():
        return Skip("workflow_dispatch needs a `prompt` input")
    return Trigger(str(prompt).strip(), None, None, False, None)


EVENT_HANDLERS: dict[str, Callable[[dict, ActionInputs], Trigger | Skip]] = {
    "issue_comment": on_issue_comment,
    "pull_request_review_comment": on_review_comment,
    "issues": on_issues,
    "pull_request": on_pull_request,
    "workflow_dispatch": on_workflow_dispatch,
}
IGNORED_EVENTS = frozenset({"push", "schedule", "pull_request_target", "release", "check_run", "status"})


def classify(event_name: str, payload: dict, inputs: ActionInputs) -> Trigger | Skip:
    if event_name in IGNORED_EVENTS:
        return Skip(f"{event_name} events do not start runs")
    if event_name not in EVENT_HANDLERS:
        raise UnsupportedEvent(
            f"the {event_name!r} event is not supported; use issue_comment, "
            "pull_request_review_comment, issues, pull_request or workflow_dispatch"
        )
    return EVENT_HANDLERS[event_name](payload, inputs)
