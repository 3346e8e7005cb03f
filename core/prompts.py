"""Turning a conversation (a Slack thread, a Linear or GitHub issue, a pull request) into the
run's prompt.

Bots fill the plain dataclasses below; :func:`build_prompt` decides what fits.  Within the
size budget it always keeps the request itself, the custom instructions, the title and the
opening post, and then as many of the newest messages as fit — every message attributed
to its author, in conversation order, with a note saying how many were left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_BUDGET = 24_000
"""Characters; about 6k tokens, leaving the model room for the code it will read."""
ITEM_LIMIT = 4_000


@dataclass(frozen=True)
class Message:
    author: str
    text: str


@dataclass
class Conversation:
    """What the person asked in, as the bot saw it."""

    kind: str  # "GitHub issue", "pull request", "Slack thread", …
    title: str | None = None
    url: str | None = None
    opening: Message | None = None
    messages: list[Message] = field(default_factory=list)
    """Later messages, oldest first (the triggering one excluded: it is the request)."""
    facts: list[tuple[str, str]] = field(default_factory=list)
    """Labelled context lines: repository, branch, labels, changed files, the diff hunk …"""


def _clip(text: str, limit: int = ITEM_LIMIT) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _quote(message: Message) -> str:
    body = "\n".join(f"> {line}" if line else ">" for line in _clip(message.text).splitlines())
    return f"{message.author} wrote:\n{body}"


def build_prompt(
    request: str,
    conversation: Conversation | None = None,
    *,
    instructions: str | None = None,
    requester: str | None = None,
    budget: int = DEFAULT_BUDGET,
) -> str:
    """The prompt: instructions, the request, then the conversation it came from."""
    head: list[str] = []
    if instructions and instructions.strip():
        head.append(instructions.strip())
    asked = f"Request from {requester}:" if requester else "Request:"
    head.append(f"{asked}\n{_clip(request, budget // 3)}")
    if conversation is None:
        return "\n\n".join(head)

    context = [f"Context: this request was made on a {conversation.kind}."]
    if conversation.title:
        context.append(f"Title: {conversation.title.strip()}")
    if conversation.url:
        context.append(f"Link: {conversation.url}")
    context += [f"{label}: {_clip(value, 2000)}" for label, value in conversation.facts if value]
    if conversation.opening and conversation.opening.text.strip():
        context.append(_quote(conversation.opening))
    fixed = "\n\n".join([*head, "\n".join(context)])

    remaining = budget - len(fixed)
    kept: list[str] = []
    for message in reversed(conversation.messages):  # newest first, until the budget is spent
        quoted = _quote(message)
        if len(quoted) + 2 > remaining:
            break
        kept.append(quoted)
        remaining -= len(quoted) + 2
    kept.reverse()
    left_out = len(conversation.messages) - len(kept)
    parts = [fixed]
    if kept or left_out:
        note = f"(The {left_out} earlier message(s) are left out.)\n\n" if left_out else ""
        parts.append("Conversation so far, oldest first:\n\n" + note + "\n\n".join(kept))
    return "\n\n".join(parts)
