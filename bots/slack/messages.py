"""Everything the Slack app says, in one place: texts and Block Kit layouts.

Each function returns ``(text, blocks)``: ``text`` is the notification and screen-reader
fallback Slack asks for, ``blocks`` what people see.  Text someone else wrote — the agent's
summary and steps, a run's title, an error's detail — goes through :func:`escape`, so the only
live links and mentions are the ones built here (an agent steered into printing
``<!channel>`` must not page the channel).
"""

from __future__ import annotations

from datetime import UTC, datetime

from core.errors import ErrorCode, OzError
from core.models import RunItem, RunState
from core.run_items import elapsed, pull_request_urls, queue_line, usage_line

S = RunState
Blocks = list[dict]

FIXES: dict[str, str] = {
    ErrorCode.INTEGRATION_DISABLED: "An admin can turn it back on with `oz-gateway integration enable slack`.",
    ErrorCode.INTEGRATION_NOT_CONFIGURED: (
        "An admin can set it up with `oz-gateway integration create slack --environment <id>`."
    ),
    ErrorCode.RESOURCE_NOT_FOUND: "An admin can point the integration at an existing environment "
    "(`oz-gateway integration update slack --environment <id>`).",
    ErrorCode.EXTERNAL_AUTHENTICATION_REQUIRED: "Connect the account named above, then mention me again.",
    ErrorCode.ENVIRONMENT_SETUP_FAILED: "Fix the environment's image or setup commands, then mention me again.",
    ErrorCode.INFRASTRUCTURE_TIMEOUT: "The run hit the time limit; try a smaller task.",
    ErrorCode.AGENT_PROCESS_FAILED: "The agent stopped unexpectedly; mention me again to retry.",
    ErrorCode.NOT_AUTHORIZED: "Ask someone with access to the repository, or get write access.",
    ErrorCode.FEATURE_NOT_AVAILABLE: "The team's cloud agent is over the plan limit.",
    ErrorCode.INTERNAL_ERROR: "Something broke on our side; mention me again to retry.",
    ErrorCode.RESOURCE_UNAVAILABLE: "The gateway is busy; mention me again in a moment.",
    ErrorCode.BUDGET_EXCEEDED: "An admin can raise the budget with `oz-gateway budget set`, or wait for the 1st.",
    ErrorCode.INSUFFICIENT_CREDITS: "An admin can raise your budget with `oz-gateway budget set --person`.",
}
ICONS = {S.SUCCEEDED: ":white_check_mark:", S.FAILED: ":x:", S.ERROR: ":warning:", S.CANCELLED: ":no_entry_sign:"}
VERDICTS = {S.SUCCEEDED: "Done", S.FAILED: "Failed", S.ERROR: "Stopped on an error", S.CANCELLED: "Cancelled"}
PHASES = {
    S.QUEUED: "Queued",
    S.PENDING: "Setting up",
    S.CLAIMED: "Setting up",
    S.INPROGRESS: "Working",
    S.BLOCKED: "Waiting for you",
}
THREAD_STATUS = "is working…"


def escape(text: str) -> str:
    """Slack's rule for text in mrkdwn: ``&``, ``<`` and ``>`` as entities, so ``<!channel>``,
    ``<@U…>`` and ``<url|label>`` show as typed instead of acting."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}}


def _context(*parts: str) -> dict:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": p} for p in parts if p]}


def explain(code: str | None, message: str) -> str:
    """A failure in plain words: what happened (``message``, escaped), its catalog code, and
    how to fix it."""
    return "\n".join([escape(message.strip()) or "Something went wrong.", *_fix(code)])


def _fix(code: str | None) -> list[str]:
    if not code:
        return []
    fix = FIXES.get(code)
    return [f"`{code}`" + (f" — {fix}" if fix else "")]


def refusal(error: OzError) -> tuple[str, Blocks]:
    """Why no run was started (sent privately to the person who asked)."""
    lines = [f"*{escape(error.title)}*", *([escape(error.detail)] if error.detail else []), *_fix(error.code)]
    return f"I can't start a run: {escape(error.title)}", [_section("\n".join(lines))]


def link_account(url: str) -> tuple[str, Blocks]:
    text = "Link your account so I can work for you"
    return text, [
        _section(
            "I don't know who you are on this gateway yet. Link your Slack user to your account once — "
            "your request will then start by itself, no need to ask again."
        ),
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Link your account"},
                    "url": url,
                    "style": "primary",
                    "action_id": "oz_link_account",
                }
            ],
        },
        _context("The link works once and expires in 30 minutes."),
    ]


def status_placeholder() -> Blocks:
    """The first reply, posted before the run exists; the reporter's first render replaces it."""
    return [_section(":hourglass_flowing_sand: *On it*")]


def status(run: RunItem, link: str | None, now: datetime | None = None) -> tuple[str, Blocks]:
    """The run's one status message, rendered from its current state (edited in place)."""
    message = run.status_message.message if run.status_message else ""
    run_link = f"<{link}|run {run.run_id[:8]}>" if link else f"run {run.run_id[:8]}"
    title = escape(run.title)
    now = now or datetime.now(UTC)
    if run.state in ICONS:
        headline = f"{ICONS[run.state]} *{VERDICTS[run.state]}* · {title}"
        body = [headline]
        if run.state == S.SUCCEEDED:
            body.append(escape(message) or "Finished.")
        else:
            body.append(explain(run.status_message.error_code if run.status_message else None, message))
        blocks = [_section("\n".join(body))]
        prs = pull_request_urls(run)
        if prs:
            blocks.append(_section("*Pull request:* " + " ".join(f"<{u}>" for u in prs)))
        blocks.append(_context(f"{elapsed(run, now)}", run_link))
        return f"{VERDICTS[run.state]}: {title}", blocks
    phase = PHASES.get(run.state, run.state.value.title())
    retrying = run.state == S.QUEUED and message.startswith("Retrying")  # a platform error, tried again
    detail = escape(message.removeprefix("Working: ")) if message and (run.state == S.INPROGRESS or retrying) else ""
    line = f":hourglass_flowing_sand: *{phase}*" + (f": {detail}" if detail else "")
    text = "On it" if run.state == S.QUEUED and not retrying else f"{phase}" + (f": {detail}" if detail else "")
    in_line = queue_line(run)
    progress = " · ".join(p for p in ("On it", in_line, elapsed(run, now)) if p)
    return text, [_section(line), _context(progress, run_link)]


def final(run: RunItem) -> tuple[str, Blocks]:
    """The one-off closing post: a short summary and the pull-request link."""
    prs = pull_request_urls(run)
    message = run.status_message.message if run.status_message else ""
    if run.state == S.SUCCEEDED:
        summary = escape(message) or "Finished."
        if prs:
            summary += "\n*Pull request:* " + " ".join(f"<{u}>" for u in prs)
        text = "Done" + (f": {prs[0]}" if prs else "")
    else:
        summary = explain(run.status_message.error_code if run.status_message else None, message)
        text = f"{VERDICTS.get(run.state, 'Finished')}: {escape(run.title)}"
    blocks = [_section(f"{ICONS.get(run.state, '')} {summary}".strip())]
    used = usage_line(run)
    if used:
        blocks.append(_context(used))
    return text, blocks
