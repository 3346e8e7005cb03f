"""The run's container: created from the environment's image with limits and no privileges,
kept alive while setup commands and the agent run in it by ``exec``, always removed.

Every container carries the label ``oz.run_id`` so a sweep can find and remove the ones a
dead worker left behind.
"""

from __future__ import annotations

import codecs
import contextlib
import posixpath
import socket
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import docker
import requests
import structlog
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.models.containers import Container
from docker.types import Mount
from docker.utils.socket import STDERR, STDOUT, frames_iter

from core.errors import ErrorCode, OzError

log = structlog.get_logger(__name__)

RUN_LABEL = "oz.run_id"
GATEWAY_LABEL = "oz.gateway"
ROLE_LABEL = "oz.role"
HOST_LABEL = "oz.host"
"""The host whose worker made the container (``OZGW_HOST_NAME``): see :func:`remove_containers`."""
WORKSPACE = "/workspace"
PROMPT_DIR = "/oz"
KEEPALIVE = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"]
EXPORT_CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "FOWNER"]
"""The exporter reads and writes files of any owner in the workspace, nothing more."""


@dataclass(frozen=True)
class Bind:
    """A host directory seen at ``target`` in the container."""

    target: str
    source: Path
    read_only: bool = False


@dataclass(frozen=True)
class SandboxSpec:
    image: str
    binds: list[Bind]
    network_mode: str
    memory: str
    cpus: float
    pids: int
    user: str | None = None
    pull: bool = True
    gateway: str = ""
    host: str = ""
    """The host of the worker making it (``OZGW_HOST_NAME``), labelled for the sweeps."""
    env: dict[str, str] = field(default_factory=dict)
    role: str = "agent"
    """``agent`` (the run's container) or ``export`` (the throwaway one that exports its work)."""
    capabilities: list[str] = field(default_factory=list)
    """Capabilities kept (``OZGW_CONTAINER_CAPABILITIES``); every other one is dropped."""
    read_only: bool = False
    """The image's root filesystem is read-only (writable places come as ``binds``)."""
    extra_hosts: dict[str, str] = field(default_factory=dict)
    """``/etc/hosts`` names (an ``egress`` container's allowed hosts at their loopback addresses)."""

    def create_options(self, run_id: str, *, with_env: bool = False) -> dict[str, object]:
        """The container's settings: no privileges, limits, labels the sweeps find it by.

        ``env`` is the container's own only for a container whose one process is its command
        (``with_env``); a kept-alive sandbox gives it to each ``exec`` instead, so it is never in
        the container's configuration — where ``docker inspect`` shows it and ``docker commit``
        would copy it into an image (:mod:`runner.snapshots`)."""
        return dict(
            detach=True,
            labels={RUN_LABEL: run_id, GATEWAY_LABEL: self.gateway, ROLE_LABEL: self.role, HOST_LABEL: self.host},
            mounts=[Mount(b.target, str(b.source), type="bind", read_only=b.read_only) for b in self.binds],
            network_mode=self.network_mode,
            read_only=self.read_only,
            cap_drop=["ALL"],
            cap_add=list(self.capabilities),
            security_opt=["no-new-privileges:true"],
            privileged=False,
            mem_limit=self.memory,
            nano_cpus=int(self.cpus * 1e9),
            pids_limit=self.pids,
            user=self.user,
            environment=self.env if with_env else None,
            extra_hosts=dict(self.extra_hosts) or None,
            init=True,
        )


def docker_client() -> docker.DockerClient:
    try:
        return docker.from_env(timeout=120)
    except DockerException as exc:
        raise OzError(ErrorCode.RESOURCE_UNAVAILABLE, f"the Docker engine cannot be reached: {exc}") from None


def ensure_image(client: docker.DockerClient, image: str, pull: bool) -> dict:
    """The image's inspection (its id, its configuration), pulling it first if the host lacks it."""
    try:
        return client.api.inspect_image(image)
    except ImageNotFound:
        if not pull:
            raise _missing_image(image) from None
    try:
        client.images.pull(image)
        return client.api.inspect_image(image)
    except (ImageNotFound, APIError) as exc:
        raise _missing_image(image, str(exc)) from None


def _missing_image(image: str, detail: str | None = None) -> OzError:
    return OzError(
        ErrorCode.ENVIRONMENT_SETUP_FAILED,
        detail or "the image is not on this host and pulling images is off",
        title=f"Docker image {image!r} not found",
    )


class OutputTail:
    """The last characters of a process's output, for error details."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.text = ""

    def add(self, chunk: str) -> None:
        self.text = (self.text + chunk)[-self.limit :]


class StdinChannel:
    """A process's standard input while it runs: what is written before it starts is sent
    when it does; :meth:`close` is its end of input.  Written from any thread."""

    def __init__(self, initial: bytes = b"", *, keep_open: bool = False) -> None:
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._pending = bytearray(initial)
        self._closed = not keep_open
        self._finished = False

    def attach(self, sock: socket.socket) -> None:
        with self._lock:
            self._socket = sock
            if self._pending:
                sock.sendall(bytes(self._pending))
                self._pending.clear()
            if self._closed:
                sock.shutdown(socket.SHUT_WR)

    def detach(self) -> None:
        with self._lock:
            self._socket, self._finished = None, True

    @property
    def open(self) -> bool:
        """Whether a write can still reach the process."""
        with self._lock:
            return not self._closed and not self._finished

    def write(self, data: bytes) -> bool:
        """Send ``data``; ``False`` when input is already closed (or the process is gone)."""
        with self._lock:
            if self._closed or self._finished:
                return False
            if self._socket is None:
                self._pending += data
                return True
            try:
                self._socket.sendall(data)
            except OSError:
                return False
            return True

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._socket is not None:
                with contextlib.suppress(OSError):
                    self._socket.shutdown(socket.SHUT_WR)


class Sandbox:
    def __init__(
        self,
        client: docker.DockerClient,
        container: Container,
        env: dict[str, str] | None = None,
        image: dict | None = None,
    ) -> None:
        self.client = client
        self.container = container
        self.env = env or {}
        """Every ``exec``'s environment (the run's variables and secrets)."""
        self.image = image or {}
        """The inspection of the image it was created from."""

    @classmethod
    def start(cls, client: docker.DockerClient, run_id: str, spec: SandboxSpec, image: dict | None = None) -> Sandbox:
        """``image``: the image's inspection, when the caller has it (one engine call fewer)."""
        image = image or ensure_image(client, spec.image, spec.pull)
        try:
            container = client.containers.run(
                spec.image, entrypoint=KEEPALIVE[:1], command=KEEPALIVE[1:], **spec.create_options(run_id)
            )
        except APIError as exc:
            raise OzError(
                ErrorCode.ENVIRONMENT_SETUP_FAILED,
                exc.explanation or str(exc),
                title=f"The container for image {spec.image!r} could not start",
            ) from None
        log.info("sandbox.started", run_id=run_id, container=container.short_id, image=spec.image)
        return cls(client, container, spec.env, image)

    @classmethod
    def run_once(
        cls, client: docker.DockerClient, run_id: str, spec: SandboxSpec, argv: list[str], timeout: float
    ) -> tuple[int | None, str]:
        """Run ``argv`` as the container's own process until it exits (or ``timeout``), then
        remove the container; its exit code (``None`` on timeout) and its output's tail."""
        ensure_image(client, spec.image, spec.pull)
        try:
            container = client.containers.run(spec.image, command=argv, **spec.create_options(run_id, with_env=True))
        except APIError as exc:
            raise OzError(ErrorCode.RESOURCE_UNAVAILABLE, exc.explanation or str(exc)) from None
        sandbox = cls(client, container)
        try:
            try:
                code: int | None = container.wait(timeout=timeout).get("StatusCode")
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
                sandbox.kill()
                code = None
            output = container.logs(tail=50).decode("utf-8", "replace")
        finally:
            sandbox.remove()
        return code, output

    def network_namespace(self) -> str:
        """The container's network namespace as a path the worker can open."""
        try:
            self.container.reload()
            pid = int(self.container.attrs["State"]["Pid"])
        except (APIError, NotFound, KeyError, TypeError, ValueError):
            pid = 0
        if pid <= 0:
            raise OzError(ErrorCode.RESOURCE_UNAVAILABLE, "the run's container stopped during setup")
        return f"/proc/{pid}/ns/net"

    def written_bytes(self) -> int | None:
        """What the container has written outside its mounts (its writable layer), as the
        engine counts it; ``None`` when the engine cannot say."""
        try:
            found = self.client.api.containers(all=True, size=True, filters={"id": self.container.id})
        except (APIError, requests.exceptions.RequestException):
            return None
        return int(found[0].get("SizeRw") or 0) if found else None

    def directory_exists(self, path: str) -> bool | None:
        """Whether ``path`` is a directory in the container; ``None`` if the container is gone."""
        code = self.exec(["test", "-d", path], workdir="/", on_output=lambda _t: None)
        return None if code is None else code == 0

    def image_user(self) -> str:
        """The ``USER`` the container's image declares (empty for root)."""
        return (self.image.get("Config") or {}).get("User") or ""

    def identity(self, user: str | None = None) -> tuple[int, int] | None:
        """The numeric uid and gid ``user`` (or the container's default user) has in the image;
        ``None`` when the image cannot say (no ``id``) or the container is gone."""
        out = OutputTail(200)
        if self.exec(["/bin/sh", "-c", "id -u && id -g"], workdir="/", on_output=out.add, user=user) != 0:
            return None
        ids = out.text.split()
        return (int(ids[0]), int(ids[1])) if len(ids) == 2 and all(i.isdigit() for i in ids) else None

    def exec(
        self,
        argv: list[str],
        *,
        workdir: str,
        on_output: Callable[[str], None],
        env: dict[str, str] | None = None,
        user: str | None = None,
        stdin: StdinChannel | None = None,
        on_stderr: Callable[[str], None] | None = None,
    ) -> int | None:
        """Run a process in the container, streaming its output as text; its exit code, or
        ``None`` when the container went away under it (killed for a cancel or timeout).

        Standard error goes to ``on_stderr`` when given (so its writes cannot split a line of a
        machine-read standard output), else into ``on_output`` with the rest.  The attach
        socket has no read timeout (an agent may think for minutes in silence); ``stdin``, when
        given, is the process's standard input for as long as it runs.
        """
        api = self.client.api
        try:
            exec_id = api.exec_create(
                self.container.id,
                argv,
                workdir=workdir,
                environment={**self.env, **(env or {})},
                stdout=True,
                stderr=True,
                stdin=stdin is not None,
                user=user or "",
            )["Id"]
            sock = api.exec_start(exec_id, socket=True)
            raw = getattr(sock, "_sock", sock)
            raw.settimeout(None)
            if stdin is not None:
                stdin.attach(raw)
            sinks = {STDOUT: on_output, STDERR: on_stderr or on_output}
            decoders = {n: codecs.getincrementaldecoder("utf-8")(errors="replace") for n in sinks}
            try:
                for stream, data in frames_iter(sock, tty=False):
                    if stream in sinks:
                        sinks[stream](decoders[stream].decode(data))
            finally:
                if stdin is not None:
                    stdin.detach()
                sock.close()
            for stream, sink in sinks.items():
                sink(decoders[stream].decode(b"", final=True))
            return api.exec_inspect(exec_id).get("ExitCode")
        except (APIError, NotFound, OSError) as exc:
            log.info("sandbox.exec_interrupted", container=self.container.short_id, reason=str(exc)[:200])
            return None

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Nothing in the container runs (the cgroup freezer) while a snapshot is taken of it."""
        self.client.api.pause(self.container.id)
        try:
            yield
        finally:
            with contextlib.suppress(APIError, NotFound):
                self.client.api.unpause(self.container.id)

    def changed_roots(self, skip: Sequence[str] = ()) -> list[str]:
        """The paths whose archives hold everything written to the container's own layer: each
        added path no added ancestor covers, and each modified file (a modified path nothing
        else in the diff lies under).  Deletions hold no bytes.  Paths under ``skip`` (mounts)
        are left out."""
        changes = self.client.api.diff(self.container.id) or []
        kinds = {c["Path"]: c["Kind"] for c in changes}
        added = {path for path, kind in kinds.items() if kind == 1}
        parents = {posixpath.dirname(path) for path in kinds}

        def ancestors(path: str) -> Iterator[str]:
            while (path := posixpath.dirname(path)) not in ("/", ""):
                yield path

        def skipped(path: str) -> bool:
            return any(path == root or path.startswith(root.rstrip("/") + "/") for root in skip)

        roots = []
        for path, kind in sorted(kinds.items()):
            if kind == 2 or skipped(path) or any(a in added for a in ancestors(path)):
                continue
            if kind == 1 or path not in parents:
                roots.append(path)
        return roots

    def archive(self, path: str) -> Iterator[bytes]:
        """``path`` in the container as a tar stream (data, read as bytes only)."""
        chunks, _stat = self.client.api.get_archive(self.container.id, path)
        return iter(chunks)

    def commit(self, repository: str, tag: str, labels: dict[str, str]) -> str:
        """The container's filesystem as an image with its *image's* configuration (user,
        environment, entrypoint), not the container's: the keep-alive command and the run's
        labels stay out of it.  Returns the image id."""
        config = self.image.get("Config") or {}
        conf = {key: config.get(key) for key in ("Env", "User", "WorkingDir", "Entrypoint", "Cmd")}
        conf["User"] = conf["User"] or "0"  # empty would take the container's (always root here)
        # The engine adds the container's own labels to any not given: the run's are emptied.
        conf["Labels"] = {RUN_LABEL: "", ROLE_LABEL: "", **(config.get("Labels") or {}), **labels}
        return self.client.api.commit(self.container.id, repository=repository, tag=tag, conf=conf, pause=False)["Id"]

    def kill(self) -> None:
        with contextlib.suppress(APIError, NotFound):
            self.container.kill()

    def remove(self) -> None:
        try:
            self.container.remove(force=True)
            log.info("sandbox.removed", container=self.container.short_id)
        except NotFound:
            pass
        except APIError as exc:
            log.warning("sandbox.remove_failed", container=self.container.short_id, reason=str(exc)[:200])


def copy_from_image(
    client: docker.DockerClient, image: str, paths: list[str], dest: Path, *, limit: int, pull: bool
) -> None:
    """The image's own directories at ``paths`` (``/home``), copied to ``dest/<name>`` with their
    owners, through a container that is created and never started.

    The archive is the image's (its environment's author chose it), so it is extracted with
    tarfile's ``tar`` filter — no absolute path, nothing outside ``dest``, no device file — and
    refused past ``limit`` bytes.  A path the image lacks becomes an empty directory.
    """
    ensure_image(client, image, pull)
    created = client.api.create_container(image, command=["/nonexistent"], network_disabled=True)
    try:
        for path in paths:
            try:
                chunks, _stat = client.api.get_archive(created["Id"], path)
            except NotFound:
                (dest / Path(path).name).mkdir(exist_ok=True)
                continue
            with tempfile.TemporaryFile(dir=dest) as spool:
                for chunk in chunks:
                    if spool.tell() + len(chunk) > limit:
                        raise OzError(
                            ErrorCode.ENVIRONMENT_SETUP_FAILED,
                            f"{path} in the image holds more than {limit} bytes; it is copied for every run "
                            "of a read-only environment",
                            title="The image's home directories are too large for a read-only root",
                        )
                    spool.write(chunk)
                spool.seek(0)
                with tarfile.open(fileobj=spool) as archive:
                    archive.extractall(dest, filter="tar", numeric_owner=True)
    finally:
        with contextlib.suppress(APIError, NotFound):
            client.api.remove_container(created["Id"], force=True)


def containers_of(
    client: docker.DockerClient, run_id: str | None = None, gateway: str | None = None
) -> list[Container]:
    labels = [f"{RUN_LABEL}={run_id}" if run_id else RUN_LABEL]
    if gateway:
        labels.append(f"{GATEWAY_LABEL}={gateway}")
    # A container removed between the engine's list and the SDK's look at it (a short-lived helper,
    # another worker's cleanup) is left out rather than failing the whole listing.
    return client.containers.list(all=True, filters={"label": labels}, ignore_removed=True)


def remove_containers(client: docker.DockerClient, gateway: str, keep: Callable[[str, str], bool]) -> list[str]:
    """Remove this gateway's run containers unless ``keep(run_id, host that made it)`` says a
    live worker there executes the run; returns their run ids."""
    removed = []
    for container in containers_of(client, gateway=gateway):
        run_id = container.labels.get(RUN_LABEL, "")
        if keep(run_id, container.labels.get(HOST_LABEL, "")):
            continue
        try:
            container.remove(force=True)
            removed.append(run_id)
        except (APIError, NotFound):
            continue
    if removed:
        log.info("sandbox.orphans_removed", run_ids=removed)
    return removed
