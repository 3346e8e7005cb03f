"""Request fields the Oz SDK carries that this gateway does not do.

Accepting them and echoing them back would tell the caller they were honoured; each is refused
by name with what to do instead (``invalid_request``).
"""

from __future__ import annotations

from core.errors import invalid

UNSUPPORTED = {
    "computer_use_enabled": "computer use (a desktop the agent drives) is not offered by this gateway",
    "worker_host": "runs go to whichever worker takes them; this gateway does not pin a run to a host",
    "runner_id": "runs go to whichever worker takes them; this gateway does not pin a run to a runner",
}
"""Config fields the SDK carries that this gateway does not do: refused by name, never echoed
back as if they had been honoured."""


def refuse_unsupported(fields: object, where: str = "config.") -> None:
    """``fields``: a run's config (a model) or a cloud agent's fields (a dict)."""
    for name, why in UNSUPPORTED.items():
        value = fields.get(name) if isinstance(fields, dict) else getattr(fields, name, None)
        if value:
            raise invalid(f"{where}{name}: {why}; leave it out")
