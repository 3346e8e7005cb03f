"""The scheduler process: periodic sweeps that keep accepted runs moving.

Today one sweep: QUEUED runs with no live job are enqueued again (they were accepted
while Redis was down).  Each sweep's failure is logged and the loop goes on.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import structlog

from core.queue import RunQueue, requeue_orphans
from core.store import Store

log = structlog.get_logger(__name__)


def sweep_once(store: Store, queue: RunQueue, grace_seconds: float) -> list[str]:
    try:
        return requeue_orphans(store, queue, grace=timedelta(seconds=grace_seconds))
    except Exception:
        log.exception("sweeper.failed")
        return []


def sweep_forever(store: Store, queue: RunQueue, interval: float, grace_seconds: float, stop: threading.Event) -> None:
    log.info("sweeper.started", interval_s=interval)
    while not stop.is_set():
        sweep_once(store, queue, grace_seconds)
        stop.wait(interval)
