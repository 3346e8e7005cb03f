"""Environment snapshots: an environment's later runs start where its setup commands left off.

After a run's setup commands succeed — before its agent has run anything — the worker keeps
what setup produced: the container's filesystem as an image (``docker commit``), the run's
workspace filesystem (working copies with their ``node_modules``, a virtualenv …) and the
host's pristine clones.  A later run of the environment whose inputs are all the same — the
image (by id), each repo's commit, the setup commands, the variables, the workspace's size,
and the names of the secrets setup saw (with whose they were) — starts from it: its pristine
clones fetch only the commits they lack, its workspace filesystem is a copy of the
snapshot's, its container is created from the snapshot's image, and setup is skipped.  An
input that differs makes the run cold, and the snapshot it takes replaces the old one: one
per environment per host.

A snapshot never holds a secret value or a token.  They reach the container only in each
exec's environment, never in its configuration, so ``docker commit`` has none to copy; and
every byte setup wrote is searched for each of them first (:mod:`runner.secret_scan`).  A
snapshot that would hold one is not kept, the run says so, and that environment's same
inputs are not tried again.

Per host, under ``<work_dir>/snapshots/``::

    <environment>/meta.json    what it was made from, when, and when it was last used
    <environment>/disk.img     the workspace filesystem (``disk/`` when workspaces have none)
    <environment>/pristine/    the host's bare clones
    <environment>.lock         flock: shared while a run copies from it, exclusive to replace it

``OZGW_SNAPSHOT_LIMIT`` caps the disk they use together (their image layers included); the
least recently used go first.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import docker
import structlog
from docker.errors import APIError, ImageNotFound, NotFound
from pydantic import BaseModel, ValidationError

from core.events import Masker
from core.settings import Settings
from runner.agent import AgentUser
from runner.backends.base import SandboxHandle
from runner.disk import IMAGE, MOUNTPOINT, check_image, copy, mount_disk
from runner.sandbox import GATEWAY_LABEL
from runner.secret_scan import Finder, find_in_tree, sparse_chunks
from runner.workspace import Workspace, remove_run_directory, remove_tree

log = structlog.get_logger(__name__)

REPOSITORY = "oz-snapshot"
SNAPSHOT_LABEL = "oz.snapshot"
_READY = ".ready-"
_ENVIRONMENT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Inputs:
    """Everything a snapshot is made from but the repos' commits (known only once fetched)."""

    image_id: str
    repos: tuple[str, ...]
    """Each repo as ``owner/name@branch`` (the branch asked for, or empty for the default)."""
    setup: tuple[str, ...]
    variables: tuple[tuple[str, str], ...]
    secrets: tuple[str, ...]
    """The names of the secrets setup saw, a personal one as ``NAME@<account>``."""
    working_dir: str | None
    container_user: str | None
    network: str
    read_only_root: bool
    disk_size: int

    def key(self, commits: Sequence[str]) -> str:
        data = json.dumps({**asdict(self), "commits": list(commits), "version": 1}, sort_keys=True)
        return hashlib.sha256(data.encode()).hexdigest()


class SnapshotRepo(BaseModel):
    full_name: str
    branch: str
    commit: str


class Snapshot(BaseModel):
    environment_uid: str
    key: str
    image: str
    repos: list[SnapshotRepo]
    disk: Literal["image", "directory"]
    made_by_run: str
    created_at: datetime
    last_used: datetime
    uses: int = 0
    bytes: int = 0
    agent_user: AgentUser
    """Who the workspace was handed to before it was kept (its files are theirs already)."""


class Refusal(BaseModel):
    key: str
    reason: str


class Snapshots:
    """This host's snapshots (its work directory and its Docker engine)."""

    def __init__(self, settings: Settings, client: docker.DockerClient) -> None:
        self.root = settings.effective_work_dir / "snapshots"
        self.limit = int(settings.snapshot_limit)
        self.gateway = settings.effective_gateway_id
        self.client = client
        self.images: dict[str, dict] = {}
        """The snapshot images' inspections, as last seen (so a container starts without another look)."""

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    def directory(self, environment_uid: str) -> Path:
        if not _ENVIRONMENT.match(environment_uid):
            raise ValueError(f"not an environment id: {environment_uid!r}")
        return self.root / environment_uid

    # --- using one ------------------------------------------------------------------------

    @contextlib.contextmanager
    def reading(self, environment_uid: str) -> Iterator[Snapshot | None]:
        """The environment's snapshot, if it has a usable one, not replaced or removed while
        the caller copies from it."""
        with self._lock(environment_uid, fcntl.LOCK_SH):
            snapshot = self._meta(environment_uid)
            if snapshot is not None and not self._image_exists(snapshot.image):
                snapshot = None
            yield snapshot

    def pristine_of(self, snapshot: Snapshot, full_name: str) -> Path | None:
        owner, _, name = full_name.partition("/")
        path = self.directory(snapshot.environment_uid) / "pristine" / owner / f"{name}.git"
        return path if path.is_dir() and not path.is_symlink() else None

    def disk_of(self, snapshot: Snapshot) -> Path:
        return self.directory(snapshot.environment_uid) / (IMAGE if snapshot.disk == "image" else "disk")

    def used(self, snapshot: Snapshot) -> None:
        """Count a use and mark it used now (the eviction order); best effort, under the reader's
        lock, read afresh under a lock of its own (two runs may start from it at once)."""
        uid = snapshot.environment_uid
        with contextlib.suppress(OSError), self._lock(f"{uid}.meta", fcntl.LOCK_EX):
            current = self._meta(uid)
            if current is not None and current.key == snapshot.key:
                self._write_meta(
                    self.directory(uid), current.model_copy(update={"last_used": _now(), "uses": current.uses + 1})
                )

    # --- ready disks: a copy made ahead, so a warm start need not copy ------------------

    def take_ready(self, snapshot: Snapshot, into: Path) -> bool:
        """Move a ready copy of the snapshot's disk (mounted) to ``into``; ``False`` if none is
        left (another run took the last, or none was made yet)."""
        for ready in sorted(self.root.glob(_ready_prefix(snapshot.environment_uid, snapshot.key) + "*")):
            try:
                ready.rename(into)  # atomic: of two runs, one has it
            except OSError:
                continue
            if snapshot.disk == "directory" or os.path.ismount(into / MOUNTPOINT):
                return True
            remove_run_directory(into)  # the host restarted since: its filesystem is not mounted
        return False

    def make_ready(self, environment_uid: str, size: int, name: str) -> bool:
        """A copy of the environment's snapshot disk, mounted, for the next warm start to take;
        made after a run (not before one) and only if none is waiting."""
        if not self.enabled:
            return False
        with self.reading(environment_uid) as snapshot:
            if snapshot is None or any(self.root.glob(_ready_prefix(environment_uid, snapshot.key) + "*")):
                return False
            staging = self.root / f".making-{name}"
            remove_run_directory(staging)
            staging.mkdir()
            try:
                mount_disk(staging, size if snapshot.disk == "image" else 0, self.disk_of(snapshot))
                staging.rename(self.root / (_ready_prefix(environment_uid, snapshot.key) + name))
            except BaseException:
                remove_run_directory(staging)
                raise
        return True

    def _ready_bytes(self, environment_uid: str) -> int:
        return sum(_allocated(r) for r in self.root.glob(_ready_prefix(environment_uid) + "*"))

    def _remove_ready(self, environment_uid: str, keep_key: str | None = None) -> None:
        for ready in self.root.glob(_ready_prefix(environment_uid) + "*"):
            if keep_key is None or not ready.name.startswith(_ready_prefix(environment_uid, keep_key)):
                doomed = self.root / f".gone-{ready.name}"
                with contextlib.suppress(OSError):
                    ready.rename(doomed)
                    remove_run_directory(doomed)

    def refused(self, environment_uid: str, key: str) -> bool:
        """Whether these very inputs were found to leave a secret behind (no use trying again)."""
        path = self.root / f"{environment_uid}.refused.json"
        try:
            return Refusal.model_validate_json(path.read_text()).key == key
        except (OSError, ValidationError):
            return False

    # --- keeping one ----------------------------------------------------------------------

    def keep(
        self,
        environment_uid: str,
        key: str,
        *,
        run_id: str,
        sandbox: SandboxHandle,
        workspace: Workspace,
        masker: Masker,
        mounts: Sequence[str],
        agent_user: AgentUser,
    ) -> Snapshot | Refusal:
        """Snapshot ``sandbox`` and ``workspace`` (setup done, the agent not started) as the
        environment's, replacing the one it had; or say why not (the refusal is remembered)."""
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".new-{run_id}"
        remove_tree(staging)
        staging.mkdir()
        image = f"{REPOSITORY}:{environment_uid}-{key[:16]}"
        finder = Finder(masker.needles())
        committed = False
        try:
            with sandbox.paused():  # nothing of setup's runs on while its work is copied and searched
                sandbox.commit(
                    REPOSITORY,
                    image.partition(":")[2],
                    {SNAPSHOT_LABEL: environment_uid, GATEWAY_LABEL: self.gateway},
                )
                committed = True
                os.sync()
                disk_image = workspace.disk_image
                disk: Literal["image", "directory"] = "image" if disk_image.exists() else "directory"
                copy(
                    disk_image if disk == "image" else workspace.disk, staging / (IMAGE if disk == "image" else "disk")
                )
                copy(workspace.pristine, staging / "pristine")
                layer = sandbox.written_bytes() or 0
                found = _secret_in(finder, sandbox, workspace, mounts)
            if found is None and disk == "image":
                check_image(staging / IMAGE)
                if finder.first(sparse_chunks(staging / IMAGE)):
                    found = "the workspace filesystem (a file since deleted)"
            if found is not None:
                refusal = Refusal(key=key, reason=f"setup left the value of a secret in {found}")
                (self.root / f"{environment_uid}.refused.json").write_text(refusal.model_dump_json())
                self._remove_image(image)
                return refusal
            now = _now()
            snapshot = Snapshot(
                environment_uid=environment_uid,
                key=key,
                image=image,
                repos=[
                    SnapshotRepo(full_name=str(r.ref), branch=r.base_branch, commit=r.base_commit)
                    for r in workspace.repos
                ],
                disk=disk,
                made_by_run=run_id,
                agent_user=agent_user,
                created_at=now,
                last_used=now,
                bytes=_allocated(staging) + layer,
            )
            self._write_meta(staging, snapshot)
            self._replace(environment_uid, staging, snapshot)
        except BaseException:
            if committed:
                self._remove_image(image)
            raise
        finally:
            remove_tree(staging)
        log.info("snapshot.kept", environment=environment_uid, run_id=run_id, bytes=snapshot.bytes)
        self.evict()
        return snapshot

    def _replace(self, environment_uid: str, staging: Path, snapshot: Snapshot) -> None:
        target = self.directory(environment_uid)
        old_dir = self.root / f".old-{snapshot.made_by_run}"
        remove_tree(old_dir)
        with self._lock(environment_uid, fcntl.LOCK_EX):
            old = self._meta(environment_uid)
            if target.exists():
                target.rename(old_dir)
            staging.rename(target)
            with contextlib.suppress(OSError):
                (self.root / f"{environment_uid}.refused.json").unlink()
        remove_tree(old_dir)
        self._remove_ready(environment_uid, keep_key=snapshot.key)
        if old is not None and old.image != snapshot.image:
            self._remove_image(old.image)

    # --- listing, clearing, evicting ------------------------------------------------------

    def all(self) -> list[Snapshot]:
        if not self.root.is_dir():
            return []
        found = [self._meta(entry.name) for entry in sorted(self.root.iterdir()) if _ENVIRONMENT.match(entry.name)]
        return sorted((s for s in found if s is not None), key=lambda s: s.last_used, reverse=True)

    def remove(self, environment_uid: str, *, wait: bool = True) -> bool:
        """Remove the environment's snapshot; ``False`` when it had none (or, not waiting, it is in use)."""
        flags = fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB)
        try:
            with self._lock(environment_uid, flags):
                snapshot = self._meta(environment_uid)
                target = self.directory(environment_uid)
                if not target.exists():
                    return False
                doomed = self.root / f".gone-{environment_uid}-{os.getpid()}"
                target.rename(doomed)
                with contextlib.suppress(OSError):
                    (self.root / f"{environment_uid}.refused.json").unlink()
        except BlockingIOError:
            return False
        remove_tree(doomed)
        self._remove_ready(environment_uid)
        if snapshot is not None:
            self._remove_image(snapshot.image)
        log.info("snapshot.removed", environment=environment_uid)
        return True

    def clear(self, environment_uid: str | None = None) -> list[str]:
        """Remove one environment's snapshot, or all of this host's; returns whose."""
        uids = [environment_uid] if environment_uid else [s.environment_uid for s in self.all()]
        removed = [uid for uid in uids if self.remove(uid)]
        if environment_uid is None:
            for leftover in self.root.glob(".*") if self.root.is_dir() else []:  # ready, half-made, half-removed
                remove_run_directory(leftover)
            self._prune_images()
        return removed

    def evict(self) -> list[str]:
        """Remove the least recently used snapshots until they fit the limit (one in use is skipped)."""
        snapshots = self.all()
        cost = {s.environment_uid: s.bytes + self._ready_bytes(s.environment_uid) for s in snapshots}
        total = sum(cost.values())
        evicted = []
        for snapshot in reversed(snapshots):  # oldest use first
            if total <= self.limit:
                break
            if self.remove(snapshot.environment_uid, wait=False):
                total -= cost[snapshot.environment_uid]
                evicted.append(snapshot.environment_uid)
        if evicted:
            log.info("snapshot.evicted", environments=evicted, limit=self.limit)
            self._prune_images()
        return evicted

    # --- the parts ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _lock(self, environment_uid: str, flags: int) -> Iterator[None]:
        self.directory(environment_uid.removesuffix(".meta"))  # the id is checked before it names a file
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f"{environment_uid}.lock", "a") as handle:
            fcntl.flock(handle, flags)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _meta(self, environment_uid: str) -> Snapshot | None:
        try:
            return Snapshot.model_validate_json((self.directory(environment_uid) / "meta.json").read_text())
        except (OSError, ValidationError):
            return None

    @staticmethod
    def _write_meta(directory: Path, snapshot: Snapshot) -> None:
        temporary = directory / "meta.json.new"
        temporary.write_text(snapshot.model_dump_json(indent=2))
        temporary.replace(directory / "meta.json")

    def _image_exists(self, image: str) -> bool:
        try:
            self.images[image] = self.client.api.inspect_image(image)
        except (ImageNotFound, NotFound):
            return False
        return True

    def _remove_image(self, image: str) -> None:
        """Untag and delete it; one a running container still uses is left to a later prune."""
        try:
            self.client.api.remove_image(image)
        except (ImageNotFound, NotFound):
            pass
        except APIError as exc:
            log.info("snapshot.image_kept", image=image, reason=str(exc)[:200])

    def _prune_images(self) -> None:
        """This gateway's snapshot images no snapshot names any more."""
        named = {s.image for s in self.all()}
        filters = {"label": [SNAPSHOT_LABEL, f"{GATEWAY_LABEL}={self.gateway}"]}
        try:
            images = self.client.api.images(filters=filters)
        except APIError:
            return
        for found in images:
            tags = [t for t in found.get("RepoTags") or [] if t != "<none>:<none>"]
            if not any(t in named for t in tags):
                for reference in tags or [found["Id"]]:
                    self._remove_image(reference)


def _secret_in(finder: Finder, sandbox: SandboxHandle, workspace: Workspace, mounts: Sequence[str]) -> str | None:
    """Where setup left a secret's value, if anywhere: the container's own layer (as the
    engine archives it) or the workspace filesystem's files."""
    if not finder.needles:
        return None
    for path in sandbox.changed_roots(skip=mounts):
        try:
            if finder.first(sandbox.archive(path)):
                return path
        except (APIError, NotFound):
            continue
    found = find_in_tree(finder, workspace.disk)
    return f"the workspace ({found})" if found else None


def _allocated(root: Path) -> int:
    """The disk blocks under ``root`` really use (a sparse image counts what it holds)."""
    total = 0
    for directory, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = [d for d in dirs if not os.path.ismount(os.path.join(directory, d))]  # a mounted image counts once
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
    return total


def _ready_prefix(environment_uid: str, key: str | None = None) -> str:
    """The names of an environment's ready disks (of the snapshot with ``key``, when given)."""
    return f"{_READY}{environment_uid}-{key[:16]}-" if key else f"{_READY}{environment_uid}-"


def _now() -> datetime:
    return datetime.now(UTC)
