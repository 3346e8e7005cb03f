"""A run container's network: the modes an environment may choose, which of them this gateway
allows, and the ``host[:port]`` endpoints an ``egress`` container may reach.

``egress`` (the default) is a container with no network of its own: only the endpoints its
environment, the harness's model API and the operator list are reachable, each forwarded by
the worker from outside the container (``runner/egress.py``), never to private, loopback,
link-local (cloud metadata) addresses unless the operator allows it.  ``none`` has no
network at all.  ``bridge`` reaches everything Docker's bridge reaches — the cloud metadata
service and every host service bound to the bridge — and ``host`` the gateway's own Redis
(one pickled job is code execution in a worker): both need the operator's consent.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal, get_args

from core.errors import ErrorCode, OzError

NetworkMode = Literal["egress", "none", "bridge", "host"]
NETWORK_MODES: tuple[str, ...] = get_args(NetworkMode)
MAX_EGRESS = 32
LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){LABEL}(\.{LABEL})*$")


@dataclass(frozen=True, order=True)
class Endpoint:
    """A host (a DNS name, or a loopback IPv4 address) and a TCP port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def literal(self) -> bool:
        """The host is an IP address (the container dials it as such)."""
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True


def parse_endpoint(text: str, default_port: int = 443) -> Endpoint:
    """``host``, ``host:port`` (or a URL, whose scheme picks the default port) as an
    :class:`Endpoint`; ``ValueError`` saying what is wrong."""
    text = text.strip()
    scheme, sep, rest = text.partition("://")
    if sep:
        default_port = {"http": 80, "https": 443}.get(scheme.lower(), default_port)
        text = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    host, colon, port_text = text.rpartition(":")
    if not colon:
        host, port_text = text, str(default_port)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
    host = host.lower().rstrip(".")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None:
        if not HOSTNAME.match(host):
            raise ValueError(f"{text!r} is not a host name")
        if host == "localhost":
            raise ValueError(f"{text!r}: the container's localhost is its own; name 127.0.0.1 instead")
        return Endpoint(host, int(port_text))
    if address.version != 4 or not address.is_loopback:
        raise ValueError(f"{text!r}: name the host; an IP address other than 127.x cannot be forwarded")
    return Endpoint(host, int(port_text))


def parse_endpoints(texts: list[str]) -> list[Endpoint]:
    endpoints = sorted({parse_endpoint(t) for t in texts})
    if len(endpoints) > MAX_EGRESS:
        raise ValueError(f"at most {MAX_EGRESS} egress endpoints")
    return endpoints


def check_network(mode: str | None, *, allow_host: bool, allow_bridge: bool) -> None:
    """Refuse a network mode the operator has not allowed, saying which setting allows it."""
    if mode == "host" and not allow_host:
        raise OzError(
            ErrorCode.ENVIRONMENT_SETUP_FAILED,
            "a container on the host network reaches the gateway's Redis; use egress or none, "
            "or let the operator set OZGW_ALLOW_HOST_NETWORK=true for trusted agents",
            title="Host networking is disabled on this gateway",
        )
    if mode == "bridge" and not allow_bridge:
        raise OzError(
            ErrorCode.ENVIRONMENT_SETUP_FAILED,
            "a container on Docker's bridge reaches the cloud metadata service and the host's services; "
            "use egress (list the hosts the environment needs) or none, "
            "or let the operator set OZGW_ALLOW_BRIDGE_NETWORK=true",
            title="Bridge networking is disabled on this gateway",
        )
