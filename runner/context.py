"""Per-process resources of a worker, and what a work horse RQ forks inherits of them.

A SQLAlchemy engine's pooled connections must not cross a fork (their sockets would be
shared): the worker primes its engine and closes its connections before forking (``adopt``),
and each horse keeps the engine — its statement cache — without them (``forked``).  The
Docker client is the horse's own, made on first use.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import docker
import redis

from core.queue import RunQueue
from core.settings import Settings, get_settings
from core.store import Store
from core.vault import Vault
from runner.backends import Backend, DockerBackend
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
    def backend(self) -> Backend:
        """What runs this worker's sandboxes (``runner/backends``): its Docker engine."""
        return DockerBackend(self.docker)

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

    def forked(self) -> WorkerContext:
        """This context in a forked child (an RQ work horse): the store's engine and statement
        cache without the parent's connections, a Docker client of its own."""
        self.store.after_fork()
        return dataclasses.replace(self, pid=os.getpid(), _docker=None)


_context: WorkerContext | None = None


def adopt(ctx: WorkerContext) -> None:
    """The worker process's own context, which each work horse it forks inherits (primed, so
    the horse's queries are compiled already: ``Store.prime``)."""
    global _context
    ctx.store.prime()
    _context = ctx


def worker_context() -> WorkerContext:
    global _context
    if _context is None:
        _context = WorkerContext.build(get_settings())
    elif _context.pid != os.getpid():
        _context = _context.forked()
    return _context
