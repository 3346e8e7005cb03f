"""Per-process resources of a worker: built lazily, after RQ forks the work horse.

A SQLAlchemy engine must not cross a fork (its pooled sockets would be shared), so the
job builds its own on first use inside the child process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import docker
import redis

from core.queue import RunQueue
from core.settings import Settings, get_settings
from core.store import Store
from core.vault import Vault
from runner.sandbox import docker_client


@dataclass
class WorkerContext:
    settings: Settings
    store: Store
    queue: RunQueue | None
    """``None`` where no Redis exists (the GitHub Action's local mode): nothing is published."""
    vault: Vault
    pid: int
    _docker: docker.DockerClient | None = None

    @property
    def docker(self) -> docker.DockerClient:
        if self._docker is None:
            self._docker = docker_client()
        return self._docker

    @property
    def redis(self) -> redis.Redis | None:
        return self.queue.connection if self.queue is not None else None

    @classmethod
    def build(
        cls, settings: Settings, store: Store | None = None, queue: RunQueue | None = None, *, with_queue: bool = True
    ) -> WorkerContext:
        store = store or Store(settings.effective_database_url)
        if queue is None and with_queue:
            queue = RunQueue.from_settings(settings)
        return cls(settings, store, queue, Vault.from_settings(settings), os.getpid())


_context: WorkerContext | None = None


def worker_context() -> WorkerContext:
    global _context
    if _context is None or _context.pid != os.getpid():
        _context = WorkerContext.build(get_settings())
    return _context
