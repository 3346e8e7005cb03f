"""Per-process resources of a worker: built lazily, after RQ forks the work horse.

A SQLAlchemy engine must not cross a fork (its pooled sockets would be shared), so the
job builds its own on first use inside the child process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from core.queue import RunQueue, connect
from core.settings import Settings, get_settings
from core.store import Store


@dataclass
class WorkerContext:
    settings: Settings
    store: Store
    queue: RunQueue
    pid: int


_context: WorkerContext | None = None


def worker_context() -> WorkerContext:
    global _context
    if _context is None or _context.pid != os.getpid():
        settings = get_settings()
        store = Store(settings.effective_database_url)
        queue = RunQueue(
            connect(settings.redis_url or "redis://127.0.0.1:6379/0"), settings.queue_name, settings.max_runtime_seconds
        )
        _context = WorkerContext(settings, store, queue, os.getpid())
    return _context
