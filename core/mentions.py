"""Text someone else wrote (the agent's summary and steps, an error's detail), made unable to
page people on a markdown surface (Linear, GitHub): each ``@name`` loses its ``@``.  An
agent steered by an issue or a file into writing ``@org/security`` must not notify anyone;
the name stays readable.  (Slack has its own rule: ``bots/slack/messages.escape``.)
"""

from __future__ import annotations

import re

MENTION = re.compile(r"(?<![\w.+-])@([A-Za-z0-9_][A-Za-z0-9_.-]*)")
"""An @-mention (not the @ of an email address)."""


def strip_mentions(text: str) -> str:
    return MENTION.sub(r"\1", text)
