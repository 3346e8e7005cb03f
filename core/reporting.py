"""Following runs for the surfaces they came from: the loop behind ``oz-gateway reporter``.

Workers announce every state change and event on :func:`core.events.updates_channel`.  The
follower turns that stream into *renders*: for each run at most one per ``interval``, and
always one after the last announcement (trailing edge), so a chatty agent costs its thread
one edit every few seconds however fast it prints.  Surface reporters render the run's
current state, so a render that is skipped, repeated or late is harmless; a periodic
sweep re-renders active runs so a lost announcement (Redis restart) only delays an update.

Save first, then notify: renders read the store, never the announcement's content.  A
reporter that raises is logged and the loop goes on.

Several reporter processes may follow at once (or a restarted one beside a dying one): each
run is rendered by one of them, the holder of the run's :class:`Leases` lease, renewed at
every render and taken over by another once it lapses (its holder died).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Protocol

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError

from core.events import updates_channel
from core.models import Run, RunItem, RunSourceType
from core.models.wire import ACTIVE_STATES, TERMINAL_STATES
from core.offload import off_loop
from core.run_items import render_item
from core.runs import load_run
from core.store import Store, utcnow
from core.store.tables import ClosingPostRow, RunRow

log = structlog.get_logger(__name__)
RECENTLY_FINISHED = timedelta(minutes=10)
RENDERS_IN_FLIGHT = 8


class SurfaceReporter(Protocol):
    """Renders one run's current state back into the surface it came from."""

    async def report(self, run: Run, item: RunItem) -> None: ...


class Recent(OrderedDict):
    """A dict that keeps only its ``limit`` most recently set keys: per-run memory of a
    long-lived reporter (what it last showed, when it last rendered) must not grow forever."""

    def __init__(self, limit: int = 10_000) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: object, value: object) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)


class Coalescer:
    """Calls ``render(key)`` at most once per ``interval`` per key, and always after the last poke.

    A poke while a render is scheduled is absorbed by it (the render reads the newest
    state); a poke during a render schedules one more, so nothing announced is missed.
    """

    def __init__(self, render: Callable[[str], Awaitable[None]], interval: float) -> None:
        self._render = render
        self.interval = interval
        self._scheduled: dict[str, asyncio.Task[None]] = {}
        self._last: dict[str, float] = Recent()
        self._locks: dict[str, asyncio.Lock] = {}

    def poke(self, key: str) -> None:
        if key in self._scheduled:
            return
        delay = max(0.0, self._last.get(key, 0.0) + self.interval - time.monotonic())
        self._scheduled[key] = asyncio.create_task(self._later(key, delay))

    async def _later(self, key: str, delay: float) -> None:
        await asyncio.sleep(delay)
        self._scheduled.pop(key, None)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            self._last[key] = time.monotonic()
            try:
                await self._render(key)
            except Exception:
                log.exception("reporter.render_failed", run_id=key)
        if not lock.locked() and key not in self._scheduled:
            self._locks.pop(key, None)  # nobody waits on it: a lock per run must not pile up

    async def drain(self) -> None:
        """Wait for every scheduled render (tests and shutdown)."""
        while self._scheduled:
            await asyncio.gather(*list(self._scheduled.values()), return_exceptions=True)

    def cancel(self) -> None:
        for task in self._scheduled.values():
            task.cancel()
        self._scheduled.clear()


def runs_to_follow(store: Store, sources: Iterable[RunSourceType]) -> list[str]:
    """Runs a sweep re-renders: active ones, and ones that finished a moment ago."""
    since = utcnow() - RECENTLY_FINISHED
    with store.reader() as session:
        rows = session.scalars(
            select(RunRow.run_id).where(
                RunRow.source.in_([s.value for s in sources]),
                or_(RunRow.state.in_([s.value for s in ACTIVE_STATES]), RunRow.updated_at >= since),
            )
        )
        return list(rows)


def load_for_report(store: Store, run_id: str) -> tuple[Run, RunItem]:
    with store.reader() as session:
        run = load_run(session, run_id)
        return run, render_item(session, run)


HOLD = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Leases:
    """Which reporter process renders a run: the one holding its lease in Redis.

    ``hold`` takes a free lease or renews one's own (atomically, a Lua script), for ``seconds``;
    a holder that dies stops renewing, and the next render anywhere after that takes over.
    Without Redis nobody can tell, so every reporter renders: an edit twice is harmless, and the
    closing post has a guard of its own.
    """

    def __init__(self, redis: Redis, prefix: str, seconds: float, holder: str | None = None) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ms = int(seconds * 1000)
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._hold = redis.register_script(HOLD)
        self._release = redis.register_script(RELEASE)

    def _key(self, run_id: str) -> str:
        return f"{self.prefix}report:lease:{run_id}"

    async def hold(self, run_id: str) -> bool:
        try:
            return bool(await self._hold(keys=[self._key(run_id)], args=[self.holder, self.ms]))
        except RedisError as exc:
            log.warning("reporter.lease_unavailable", run_id=run_id, reason=type(exc).__name__)
            return True

    async def release(self, run_id: str) -> None:
        with contextlib.suppress(RedisError):
            await self._release(keys=[self._key(run_id)], args=[self.holder])


def claim_closing(store: Store, run_id: str, attempt: int) -> bool:
    """Whether this caller may post the run's closing words for this execution: the first claim
    wins, in the store (a Redis that restarted would forget it, and the post would go twice)."""
    try:
        with store.session() as session:
            session.add(ClosingPostRow(run_id=run_id, attempt=attempt, claimed_at=utcnow()))
        return True
    except IntegrityError:
        return False


def release_closing(store: Store, run_id: str, attempt: int) -> None:
    """The post failed: the next render tries again."""
    with store.session() as session:
        session.execute(
            delete(ClosingPostRow).where(ClosingPostRow.run_id == run_id, ClosingPostRow.attempt == attempt)
        )


class Follower:
    """Routes announcements to the surface reporter of each run's source, coalesced; renders
    only the runs whose lease it holds."""

    def __init__(
        self,
        store: Store,
        redis: Redis,
        reporters: dict[RunSourceType, SurfaceReporter],
        *,
        prefix: str,
        interval: float = 1.5,
        sweep_every: float = 30.0,
        threads: int = 4,
        lease_seconds: float = 15.0,
        holder: str | None = None,
    ) -> None:
        self.store = store
        self.redis = redis
        self.reporters = reporters
        self.sweep_every = sweep_every
        self.coalescer = Coalescer(self._render, interval)
        self.leases = Leases(redis, prefix, lease_seconds, holder)
        self.prefix = prefix
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="ozgw-reporter")
        self._in_flight = asyncio.Semaphore(RENDERS_IN_FLIGHT)

    async def _render(self, run_id: str) -> None:
        # A sweep pokes every run at once: renders wait their turn, or each would take a Redis
        # and a store connection of its own (the soak saw the reporter's connections grow so).
        async with self._in_flight:
            if not await self.leases.hold(run_id):
                log.debug("reporter.run_held_elsewhere", run_id=run_id)
                return
            run, item = await off_loop(self._executor, load_for_report, self.store, run_id)
            reporter = self.reporters.get(run.source)
            if reporter is not None:
                await reporter.report(run, item)
            if item.state in TERMINAL_STATES:
                await self.leases.release(run_id)

    def poke(self, run_id: str) -> None:
        self.coalescer.poke(run_id)

    async def sweep(self) -> None:
        for run_id in await off_loop(self._executor, runs_to_follow, self.store, list(self.reporters)):
            self.poke(run_id)

    async def run(self, stop: asyncio.Event) -> None:
        """Follow announcements until ``stop`` is set; reconnects when Redis goes away."""
        sweeper = asyncio.create_task(self._sweep_forever(stop))
        try:
            while not stop.is_set():
                try:
                    await self._listen(stop)
                except (RedisError, OSError) as exc:
                    log.warning("reporter.redis_lost", reason=type(exc).__name__)
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(stop.wait(), 1.0)
        finally:
            sweeper.cancel()
            await self.coalescer.drain()
            self._executor.shutdown(wait=False)

    async def _listen(self, stop: asyncio.Event) -> None:
        async with self.redis.pubsub() as pubsub:
            await pubsub.subscribe(updates_channel(self.prefix))
            await self.sweep()  # anything announced while we were not listening
            while not stop.is_set():
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
                if message is None:
                    continue
                try:
                    run_id = json.loads(message["data"])["run_id"]
                except (ValueError, KeyError, TypeError):
                    continue
                self.poke(run_id)

    async def _sweep_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self.sweep_every)
            if not stop.is_set():
                try:
                    await self.sweep()
                except Exception:
                    log.exception("reporter.sweep_failed")
