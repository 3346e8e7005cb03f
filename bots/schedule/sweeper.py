"""The scheduler process: periodic sweeps that keep accepted runs moving.

The composition root hands in the sweeps (callables); each one's failure is logged and the
loop goes on, as RQ's registry cleanup does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import structlog

log = structlog.get_logger(__name__)

Sweep = Callable[[], object]


def sweep_once(sweeps: Sequence[Sweep]) -> None:
    for sweep in sweeps:
        try:
            sweep()
        except Exception:
            log.exception("sweeper.failed", sweep=getattr(sweep, "__name__", repr(sweep)))


def sweep_forever(sweeps: Sequence[Sweep], interval: float, stop: threading.Event) -> None:
    log.info("sweeper.started", interval_s=interval, sweeps=len(sweeps))
    while not stop.is_set():
        sweep_once(sweeps)
        stop.wait(interval)
