"""Watches one executing run from a side thread: pushes its heartbeat, notices a cancel in
the store, enforces the maximum runtime, the container's storage limit, the run's idle
timeout and its cost cap (``core/budgets.py``), and kills the sandbox when any of those
happens, so the blocked ``exec`` stream in the job returns at once.  While the agent works
it also hands new follow-ups to it, within a tick of their arrival."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog

from core import runs
from core.budgets import Cap, run_cost
from core.models import ModelUsage, RunState
from core.models.wire import SANDBOX_STATES
from runner.backends.base import SandboxHandle
from runner.context import WorkerContext

log = structlog.get_logger(__name__)

CANCELLED = "cancelled"
TIMED_OUT = "timed_out"
OVER_STORAGE = "over_storage"
IDLE = "idle"
OVER_BUDGET = "over_budget"


class Supervisor(threading.Thread):
    def __init__(self, ctx: WorkerContext, run_id: str, max_runtime: float) -> None:
        super().__init__(name=f"supervise-{run_id[:8]}", daemon=True)
        self.ctx = ctx
        self.run_id = run_id
        self.deadline = time.monotonic() + max_runtime
        self.reason: str | None = None
        self.sandbox: SandboxHandle | None = None
        self.on_followups: Callable[[list[str]], None] | None = None
        """Set while the agent runs: follow-ups taken from the store go there."""
        self.on_tick: Callable[[], None] | None = None
        """Called every tick (the transcript's pending events are written then)."""
        self._done = threading.Event()
        settings = ctx.settings
        self._tick = min(settings.heartbeat_seconds, settings.cancel_poll_seconds, 1.0)
        self._next_beat = 0.0
        self._next_storage_check = 0.0
        self.written: int | None = None
        """What the container had written outside its mounts at the last check."""
        self.idle_limit: float | None = None
        """Set while the agent runs with ``idle_timeout_minutes``: how long it may print nothing."""
        self.last_output = time.monotonic()
        self.cap: Cap | None = None
        """The most the run may cost; it is stopped when its cost reaches this."""
        self.live_usage: Callable[[], list[ModelUsage]] = list
        """What the agent reported using so far and has not been recorded yet."""
        self.cost = 0.0
        """The run's cost at the last check."""
        self._next_cost_check = 0.0

    def watch_idle(self, limit_seconds: float | None) -> None:
        """From now, stop the run when the agent prints nothing for ``limit_seconds``
        (``None``: never)."""
        self.last_output, self.idle_limit = time.monotonic(), limit_seconds

    def heard(self) -> None:
        """The agent printed something."""
        self.last_output = time.monotonic()

    def attach(self, sandbox: SandboxHandle) -> None:
        self.sandbox = sandbox
        if self.reason:
            sandbox.kill()

    def finish(self) -> None:
        self._done.set()
        self.join(10)

    def run(self) -> None:
        while not self._done.wait(self._tick):
            try:
                if self.on_tick is not None:
                    self.on_tick()
                self._check()
            except Exception:  # a store hiccup must not kill the watch; try again next tick
                log.exception("supervisor.check_failed", run_id=self.run_id)

    def _check(self) -> None:
        now = time.monotonic()
        deliver = self.on_followups
        messages: list[str] = []
        with self.ctx.store.session() as session:
            if now >= self._next_beat:
                runs.heartbeat(session, self.run_id)
                self._next_beat = now + self.ctx.settings.heartbeat_seconds
            state = runs.load_run(session, self.run_id).state
            if deliver is not None and state == RunState.INPROGRESS:
                messages = runs.take_followups(session, self.run_id)
        if messages and deliver is not None:
            deliver(messages)
        if self.reason is None and state == RunState.CANCELLED:
            self._halt(CANCELLED)
        elif self.reason is None and now >= self.deadline:
            self._halt(TIMED_OUT)
        elif self.reason is None and self._over_storage(now):
            self._halt(OVER_STORAGE)
        elif self.reason is None and self.idle_limit is not None and now - self.last_output > self.idle_limit:
            self._halt(IDLE)
        elif self.reason is None and self._over_budget(now, state):
            self._halt(OVER_BUDGET)

    def _over_budget(self, now: float, state: RunState) -> bool:
        """Bring the run's cost up to date every ``cost_check_seconds`` (the console and the
        budgets see it grow) and say whether it reached its cap."""
        if now < self._next_cost_check or state not in SANDBOX_STATES:
            return False
        self._next_cost_check = now + self.ctx.settings.cost_check_seconds
        with self.ctx.store.session() as session:
            run = runs.record_cost(session, self.run_id, self.ctx.settings.prices, self.live_usage())
        self.cost = run_cost(run)
        return self.cap is not None and self.cost >= self.cap.usd

    def _over_storage(self, now: float) -> bool:
        """Whether the container wrote more than its limit outside ``/workspace`` (which has
        a filesystem of its own); checked every ``storage_check_seconds``, as counting costs
        the engine a walk of the container's files."""
        if self.sandbox is None or now < self._next_storage_check:
            return False
        self._next_storage_check = now + self.ctx.settings.storage_check_seconds
        self.written = self.sandbox.written_bytes()
        return self.written is not None and self.written > self.ctx.settings.container_storage_limit

    def _halt(self, reason: str) -> None:
        self.reason = reason
        log.info("supervisor.stopping", run_id=self.run_id, reason=reason)
        if self.sandbox is not None:
            self.sandbox.kill()
