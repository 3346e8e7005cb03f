"""MCP server configurations as they leave the gateway.

A server's ``headers`` and ``env`` carry tokens and keys: they are given to the agent's
container and to nobody else.  Anything shown to people — a run's config, a cloud agent —
keeps their names (so one can tell what is configured) with the values replaced.
"""

from __future__ import annotations

from typing import Any

REDACTED = "***"


def redact(servers: dict[str, Any] | None) -> dict[str, dict] | None:
    """``servers`` (configs or their dicts) with every header and env value redacted."""
    if not servers:
        return servers
    shown = {}
    for name, server in servers.items():
        data = server.model_dump(exclude_none=True) if hasattr(server, "model_dump") else dict(server)
        for field in ("headers", "env"):
            if data.get(field):
                data[field] = {key: REDACTED for key in data[field]}
        shown[name] = data
    return shown
