"""One sticky comment per run on the issue or PR, rendered from the run's current state.

It renders state rather than replaying deltas, so polling twice, retrying, or skipping an
update is harmless; the comment is only edited when its text would change.  A hidden marker
finds the comment again, so a restarted step edits the same comment instead of adding one.
"""

from __future__ import annotations

from datetime import UTC, datetime

from github.Issue import Issue
from github.IssueComment import IssueComment

from core.mentions import strip_mentions
from core.models import RunItem, RunState
from core.run_items import elapsed, pull_request_urls, queue_line, usage_line

MARKER = "<!-- oz-gateway-run:{run_id} -->"
S = RunState
ICONS = {S.SUCCEEDED: "✅", S.FAILED: "❌", S.ERROR: "⚠️", S.CANCELLED: "🚫"}
STEPS = (("Queued", (S.QUEUED,)), ("Setting up", (S.PENDING, S.CLAIMED)), ("Working", (S.INPROGRESS, S.BLOCKED)))


def render(run: RunItem, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    lines = [MARKER.format(run_id=run.run_id)]
    link = f" · [run]({run.session_link})" if run.session_link else ""
    message = strip_mentions(run.status_message.message if run.status_message else "")  # the agent's words
    if run.state in ICONS:
        verdict = {
            S.SUCCEEDED: "finished",
            S.FAILED: "failed",
            S.ERROR: "stopped on an error",
            S.CANCELLED: "was cancelled",
        }[run.state]
        lines.append(f"{ICONS[run.state]} **Oz {verdict}** after {elapsed(run, now)}{link}")
        if message:
            lines += ["", message]
        if run.status_message and run.status_message.error_code:
            lines += ["", f"Error code: `{run.status_message.error_code}`"]
        for url in pull_request_urls(run):
            lines += ["", f"**Pull request:** {url}"]
        used = usage_line(run)
        if used:
            lines += ["", f"<sub>{used}</sub>"]
        return "\n".join(lines)
    lines.append(f"⏳ **Oz is on it** · {elapsed(run, now)}{link}")
    lines.append("")
    current = next(i for i, (_l, states) in enumerate(STEPS) if run.state in states)
    in_line = queue_line(run)
    for index, (label, _states) in enumerate(STEPS):
        done = "x" if index < current else " "
        detail = f" — {message.removeprefix('Working: ')}" if index == current and message and index == 2 else ""
        if index == current == 0 and in_line:
            detail = f" — {in_line}"
        lines.append(f"- [{done}] {label}{detail}")
    lines.append("- [ ] Done")
    return "\n".join(lines)


class StickyComment:
    """The run's comment on one issue or PR: created on first show, edited after."""

    def __init__(self, issue: Issue, run_id: str) -> None:
        self.issue = issue
        self.marker = MARKER.format(run_id=run_id)
        self.comment: IssueComment | None = next(
            (c for c in issue.get_comments() if self.marker in (c.body or "")), None
        )
        self.body = self.comment.body if self.comment else None

    def show(self, body: str) -> None:
        if body == self.body:
            return
        if self.comment is None:
            self.comment = self.issue.create_comment(body)
        else:
            self.comment.edit(body)
        self.body = body

    @property
    def url(self) -> str | None:
        return self.comment.html_url if self.comment else None
