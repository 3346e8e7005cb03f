"""The seam between an execution and whatever runs its sandbox."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from runner.sandbox import SandboxSpec, StdinChannel


class SandboxHandle(Protocol):
    """A started sandbox: processes run in it until it is removed."""

    image: dict
    """The inspection of the image it was started from."""

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
        """Run a process to its end, its output streamed; its exit code, ``None`` if the sandbox went."""
        ...

    def kill(self) -> None: ...

    def remove(self) -> None: ...

    def network_namespace(self) -> str:
        """A path the worker can open to enter the sandbox's network namespace (egress forwarding)."""
        ...

    def written_bytes(self) -> int | None:
        """What it wrote outside its mounts (checked against the storage limit)."""
        ...

    def directory_exists(self, path: str) -> bool | None: ...

    def image_user(self) -> str: ...

    def identity(self, user: str | None = None) -> tuple[int, int] | None: ...

    # --- what a snapshot is made from (``runner.snapshots``) ---------------------------

    def paused(self) -> AbstractContextManager[None]: ...

    def commit(self, repository: str, tag: str, labels: dict[str, str]) -> str: ...

    def changed_roots(self, skip: Sequence[str] = ()) -> list[str]: ...

    def archive(self, path: str) -> Iterator[bytes]: ...


class Backend(Protocol):
    """Starts sandboxes and one-shot helpers, and finds what a dead worker left behind."""

    def inspect_image(self, image: str, pull: bool) -> dict:
        """The image's inspection (``Id``, ``Config``), fetched first if allowed and missing;
        a missing image is ``environment_setup_failed``."""
        ...

    def start(self, run_id: str, spec: SandboxSpec, image: dict | None = None) -> SandboxHandle: ...

    def run_once(self, run_id: str, spec: SandboxSpec, argv: list[str], timeout: float) -> tuple[int | None, str]:
        """``argv`` as a sandbox's only process until it exits; its exit code and output's tail."""
        ...

    def copy_from_image(self, image: str, paths: list[str], dest: Path, *, limit: int, pull: bool) -> None: ...

    def helper_image(self) -> str:
        """An image with git and a shell for the exporter, when the operator named none."""
        ...

    def remove_orphans(self, gateway: str, keep: Callable[[str, str], bool]) -> list[str]:
        """Remove this gateway's sandboxes unless ``keep(run_id, the host that made the sandbox)``
        says a live worker there executes the run."""
        ...
