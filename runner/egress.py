"""An ``egress`` container's only way out: the worker listens *inside* the container's network
namespace and carries each connection to the real endpoint from its own.

The container is created with no network (loopback only) and an ``/etc/hosts`` that names
each allowed host at a loopback address of its own (``127.80.0.N``).  The worker enters the
container's namespace on a short-lived thread, opens a listening socket at that address and
port, and leaves; the socket stays in the container's namespace while the worker serves it
from its own.  So the agent reaches an allowed host by its usual name and port, TLS runs end
to end (certificates and SNI unchanged, no proxy settings, any client works: git, npm, pip,
the CLIs), and nothing else exists: no route, no DNS server, no host service, no metadata
address.  Each connection's destination is resolved and checked when it is made — a name
resolving to a private, loopback or link-local address (the cloud metadata service, the
host's Redis) is refused unless the operator allowed private addresses — so DNS rebinding
gains nothing.

Entering another network namespace needs ``CAP_SYS_ADMIN`` and the container's PID visible
(the worker runs as root on the Docker host, or in a container with ``pid: host``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import ipaddress
import os
import socket
import threading
from collections.abc import Awaitable, Callable
from functools import partial

import structlog

from core.errors import ErrorCode, OzError
from core.network import Endpoint

log = structlog.get_logger(__name__)

CLONE_NEWNET = 0x40000000
NAME_PREFIX = "127.80."
"""Loopback addresses given to allowed host names inside the container (``127.80.0.1``…)."""
CHUNK = 64 * 1024

Resolver = Callable[[str, int], Awaitable[list[str]]]


def container_addresses(endpoints: list[Endpoint]) -> dict[Endpoint, str]:
    """The loopback address each endpoint is dialled at inside the container: its own for a
    loopback literal, one per host name otherwise (so two names may share a port)."""
    names = sorted({e.host for e in endpoints if not e.literal})
    if len(names) > 65_000:
        raise ValueError("too many egress host names")
    by_name = {name: f"{NAME_PREFIX}{(i + 1) // 256}.{(i + 1) % 256}" for i, name in enumerate(names)}
    return {e: e.host if e.literal else by_name[e.host] for e in endpoints}


def hosts_entries(endpoints: list[Endpoint]) -> dict[str, str]:
    """``/etc/hosts`` lines for the container (Docker's ``extra_hosts``)."""
    return {e.host: address for e, address in container_addresses(endpoints).items() if not e.literal}


def permitted(address: str, allow_private: bool) -> bool:
    """Whether a connection may go to ``address``: public ones always, private, loopback and
    link-local (metadata) ones only when the operator allows them; never multicast or ``0``."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.is_multicast or ip.is_unspecified:
        return False
    return allow_private or ip.is_global


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def listen_in_namespace(namespace: str, addresses: list[tuple[str, int]]) -> list[socket.socket]:
    """Listening sockets at ``addresses`` inside the network namespace at ``namespace`` (a
    ``/proc/PID/ns/net`` path).  A network namespace belongs to a thread, so a thread of
    its own enters it and ends there; the worker's other threads never leave theirs."""
    made: list[socket.socket] = []
    failure: list[BaseException] = []

    def enter() -> None:
        try:
            fd = os.open(namespace, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc().setns(fd, CLONE_NEWNET) != 0:
                    code = ctypes.get_errno()
                    raise OSError(code, os.strerror(code))
            finally:
                os.close(fd)
            for address, port in addresses:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                made.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((address, port))
                sock.listen(128)
                sock.setblocking(False)
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=enter, name="egress-setns")
    thread.start()
    thread.join()
    if failure:
        for sock in made:
            sock.close()
        exc = failure[0]
        if isinstance(exc, OSError) and exc.errno in (errno.EPERM, errno.EACCES, errno.ENOENT):
            raise OzError(
                ErrorCode.ENVIRONMENT_SETUP_FAILED,
                f"the worker cannot enter the container's network namespace ({exc.strerror}): run the worker as "
                "root on the Docker host (or with pid: host and CAP_SYS_ADMIN); or, accepting open egress, set "
                "OZGW_ALLOW_BRIDGE_NETWORK=true and give the environment network bridge",
                title="Egress forwarding is not available on this worker",
            ) from None
        raise OzError(ErrorCode.ENVIRONMENT_SETUP_FAILED, f"egress forwarding could not start: {exc}") from None
    return made


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


class EgressForwarder:
    """Serves one run's allowed endpoints for as long as its container lives.

    ``on_refused`` hears, once per endpoint and reason, why a connection was not carried
    (the run's transcript says so, so a failing ``npm install`` explains itself).
    """

    def __init__(
        self,
        endpoints: list[Endpoint],
        *,
        allow_private: bool,
        max_connections: int,
        on_refused: Callable[[str], None],
        connect_timeout: float = 15.0,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.endpoints = endpoints
        self.allow_private = allow_private
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self._on_refused = on_refused
        self._resolve = resolver
        self._told: set[str] = set()
        self._active = 0
        self.carried = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    def start(self, namespace: str) -> None:
        """Listen in the container's namespace and serve from a thread of the worker's own."""
        addresses = container_addresses(self.endpoints)
        sockets = listen_in_namespace(namespace, [(addresses[e], e.port) for e in self.endpoints])
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_until_complete, args=(self._serve(sockets, ready),), name="egress", daemon=True
        )
        self._thread.start()
        ready.wait(10)
        log.info("egress.started", endpoints=[str(e) for e in self.endpoints])

    def close(self) -> None:
        if self._loop is None or self._stop is None or self._thread is None:
            return
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        with contextlib.suppress(RuntimeError):
            self._loop.close()
        self._loop = None

    async def _serve(self, sockets: list[socket.socket], ready: threading.Event) -> None:
        self._stop = asyncio.Event()
        servers = [
            await asyncio.start_server(partial(self._carry, endpoint), sock=sock)
            for endpoint, sock in zip(self.endpoints, sockets, strict=True)
        ]
        ready.set()
        try:
            await self._stop.wait()
        finally:
            for server in servers:
                server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _carry(self, endpoint: Endpoint, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._active >= self.max_connections:
            self._refuse(endpoint, f"more than {self.max_connections} connections are open")
            writer.close()
            return
        self._active += 1
        upstream: asyncio.StreamWriter | None = None
        try:
            opened = await self._connect(endpoint)
            if opened is None:
                return
            up_reader, upstream = opened
            self.carried += 1
            await asyncio.gather(_pipe(reader, upstream), _pipe(up_reader, writer))
        finally:
            self._active -= 1
            for stream in (writer, upstream):
                if stream is not None:
                    stream.close()

    async def _connect(self, endpoint: Endpoint) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        try:
            addresses = await asyncio.wait_for(self._resolve(endpoint.host, endpoint.port), self.connect_timeout)
        except (OSError, TimeoutError) as exc:
            self._refuse(endpoint, f"its name does not resolve ({exc})")
            return None
        allowed = [a for a in addresses if permitted(a, self.allow_private)]
        if not allowed:
            self._refuse(
                endpoint,
                f"it resolves to {', '.join(addresses)}: private, loopback and link-local addresses are not reachable "
                "(the operator may allow them with OZGW_EGRESS_ALLOW_PRIVATE)",
            )
            return None
        for address in allowed:
            try:
                return await asyncio.wait_for(asyncio.open_connection(address, endpoint.port), self.connect_timeout)
            except (OSError, TimeoutError):
                continue
        self._refuse(endpoint, f"no address of it answered ({', '.join(allowed)})")
        return None

    def _refuse(self, endpoint: Endpoint, why: str) -> None:
        text = f"Network: a connection to {endpoint} was not made: {why}"
        log.info("egress.refused", endpoint=str(endpoint), why=why)
        if text in self._told:
            return
        self._told.add(text)
        # the transcript writes to the store: not on this loop, which carries every connection
        asyncio.get_running_loop().run_in_executor(None, self._on_refused, text)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy until end of input, then pass the half-close on (a request may end with EOF)."""
    try:
        while data := await source.read(CHUNK):
            sink.write(data)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()
    except (ConnectionError, OSError):
        sink.close()
