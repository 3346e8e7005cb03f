"""The Docker engine as the runner's backend (``runner/sandbox.py`` does the work)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import docker

from runner import sandbox
from runner.exporter_image import exporter_image
from runner.sandbox import Sandbox, SandboxSpec


class DockerBackend:
    """One Docker engine (the worker's ``DOCKER_HOST``)."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client

    def inspect_image(self, image: str, pull: bool) -> dict:
        return sandbox.ensure_image(self.client, image, pull)

    def start(self, run_id: str, spec: SandboxSpec, image: dict | None = None) -> Sandbox:
        return Sandbox.start(self.client, run_id, spec, image)

    def run_once(self, run_id: str, spec: SandboxSpec, argv: list[str], timeout: float) -> tuple[int | None, str]:
        return Sandbox.run_once(self.client, run_id, spec, argv, timeout)

    def copy_from_image(self, image: str, paths: list[str], dest: Path, *, limit: int, pull: bool) -> None:
        sandbox.copy_from_image(self.client, image, paths, dest, limit=limit, pull=pull)

    def helper_image(self) -> str:
        return exporter_image(self.client)

    def remove_orphans(self, gateway: str, keep: Callable[[str, str], bool]) -> list[str]:
        return sandbox.remove_containers(self.client, gateway, keep)
