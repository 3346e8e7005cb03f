"""MCP server configurations as they are stored and as they leave the gateway.

A server's ``headers`` and ``env`` carry tokens and keys: they are given to the agent's
container and to nobody else.  Stored, each value is sealed (encrypted with the gateway's
:class:`~core.secrets.Vault`, like managed secrets), wherever the configuration lives — an
integration, a cloud agent, a run's config — so a database dump holds none of them.  Anything
shown to people keeps their names (so one can tell what is configured) with the values
replaced.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.secrets import Vault

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
