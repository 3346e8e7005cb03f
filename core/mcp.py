"""MCP server configurations as they are stored and as they leave the gateway.

A server's ``headers`` and ``env`` carry tokens and keys: they are given to the agent's
container and to nobody else.  Stored, each value is sealed (encrypted with the gateway's
:class:`~core.vault.Vault`, like managed secrets), wherever the configuration lives — an
integration, a cloud agent, a run's config — so a database dump holds none of them.  Anything
shown to people keeps their names (so one can tell what is configured) with the values
replaced.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from core.errors import invalid
from core.vault import Vault

REDACTED = "***"
SEALED = "oz-sealed:"
_CREDENTIALS = ("headers", "env")


def seal(servers: dict[str, Any] | None, vault: Vault | None) -> dict[str, dict] | None:
    """``servers`` as stored: every header and env value encrypted (sealed ones stay as they are)."""
    return _map_credentials(servers, lambda v: v if v.startswith(SEALED) else SEALED + _need(vault).encrypt(v))


def unseal(servers: dict[str, Any] | None, vault: Vault) -> dict[str, dict] | None:
    """``servers`` as the agent's container gets them: every sealed value decrypted."""
    return _map_credentials(servers, lambda v: vault.decrypt(v.removeprefix(SEALED)) if v.startswith(SEALED) else v)


def reseal(servers: dict[str, Any] | None, vault: Vault) -> dict[str, dict] | None:
    """``servers`` with every value sealed under the newest key (plain ones stored before
    credentials were sealed included): what ``secret rotate-keys`` stores back."""
    return _map_credentials(
        servers, lambda v: SEALED + (vault.rotate(v.removeprefix(SEALED)) if v.startswith(SEALED) else vault.encrypt(v))
    )


def count_credentials(servers: dict[str, Any] | None) -> int:
    return sum(len(s.get(field) or {}) for s in (servers or {}).values() for field in _CREDENTIALS)


def _need(vault: Vault | None) -> Vault:
    if vault is None:
        raise ValueError("MCP server credentials can only be stored encrypted: no vault was given")
    return vault


def _map_credentials(servers: dict[str, Any] | None, change: Callable[[str], str]) -> dict[str, dict] | None:
    if not servers:
        return servers
    mapped = {}
    for name, server in servers.items():
        data = server.model_dump(exclude_none=True) if hasattr(server, "model_dump") else dict(server)
        for field in _CREDENTIALS:
            if data.get(field):
                data[field] = {key: change(value) for key, value in data[field].items()}
        mapped[name] = data
    return mapped


def redact(servers: dict[str, Any] | None) -> dict[str, dict] | None:
    """``servers`` (configs or their dicts) with every header and env value redacted."""
    return _map_credentials(servers, lambda _value: REDACTED)


REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def merge(*layers: dict[str, Any] | None) -> dict[str, dict]:
    """The servers a run's agent gets: cloud agent → integration → run, a later layer's server
    replacing an earlier one of the same name (the run's request is the most specific)."""
    merged: dict[str, dict] = {}
    for layer in layers:
        for name, server in (layer or {}).items():
            merged[name] = server.model_dump(exclude_none=True) if hasattr(server, "model_dump") else dict(server)
    return merged


def expand(servers: dict[str, dict], variables: dict[str, str]) -> tuple[dict[str, dict], list[str]]:
    """``${NAME}`` in a header or env value replaced by the run's variable or managed secret of
    that name — how a config names a credential without holding it (Oz's own rule: secrets are
    set where the agent runs, never synced in the config).  Returns the servers and the names
    no variable or secret defines."""
    missing: list[str] = []

    def resolve(value: str) -> str:
        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in variables:
                missing.append(name)
                return match.group(0)
            return variables[name]

        return REFERENCE.sub(one, value)

    return _map_credentials(servers, resolve) or {}, sorted(set(missing))


def credentials_of(servers: dict[str, dict]) -> list[str]:
    """Every header and env value: what the transcript must never show."""
    return [value for s in servers.values() for field in _CREDENTIALS for value in (s.get(field) or {}).values()]


NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_usable(servers: dict[str, Any] | None) -> None:
    """What every harness can be given, refused when accepted otherwise.  A ``warp_id`` names a
    server shared in Warp's cloud — a self-hosted gateway has none to look up, so accepting it
    would hand the agent nothing while the API said yes; a name is what the CLIs build tool
    names and config keys from (``mcp__<name>__<tool>``), so it keeps to letters, digits, ``-``, ``_``."""
    for name, server in (servers or {}).items():
        if not NAME.match(name):
            raise invalid(f"MCP server name {name!r}: use letters, digits, '-' and '_' (at most 64)")
        if (server.warp_id if hasattr(server, "warp_id") else dict(server).get("warp_id")) is not None:
            raise invalid(
                f"MCP server {name!r} names a Warp-shared server (warp_id); this gateway has no shared servers: "
                "give its command (stdio) or url (HTTP) instead"
            )
