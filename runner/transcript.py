"""The run's transcript on its way to the store: written in batches and capped.

An agent prints thousands of lines; one transaction per line would make the store (SQLite
above all) the bottleneck and hold up every API write.  Events are kept for a moment and
written together — at most every ``interval`` seconds, or as soon as ``batch`` have gathered,
and on every supervisor tick so a quiet agent's last step still shows.  Past ``cap`` events a
run's transcript stops growing (one note says so); the parser still sees every line, so the
summary, failures and usage stay exact.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from core.events import EventKind, RunEvent

BATCH = 200
INTERVAL_SECONDS = 0.25


class TranscriptWriter:
    def __init__(
        self,
        write: Callable[[list[RunEvent]], None],
        cap: int,
        *,
        batch: int = BATCH,
        interval: float = INTERVAL_SECONDS,
    ) -> None:
        self._write = write
        self.cap = cap
        self.batch = batch
        self.interval = interval
        self._lock = threading.Lock()
        self._pending: list[RunEvent] = []
        self._kept = 0
        self._truncated = False
        self._last = time.monotonic()

    def add(self, events: list[RunEvent]) -> None:
        if not events:
            return
        with self._lock:
            taken = events[: max(self.cap - self._kept, 0)]
            self._pending += taken
            self._kept += len(taken)
            if len(taken) < len(events) and not self._truncated:
                self._truncated = True
                self._pending.append(
                    RunEvent(kind=EventKind.STATUS, text=f"The transcript stops here: {self.cap} events kept")
                )
            due = len(self._pending) >= self.batch or time.monotonic() - self._last >= self.interval
        if due:
            self.flush()

    def flush(self) -> None:
        """Write what is pending now (the supervisor calls this every tick, and the job at the end)."""
        with self._lock:
            pending, self._pending = self._pending, []
            self._last = time.monotonic()
            if pending:
                self._write(pending)  # under the lock: events are numbered in the order written
