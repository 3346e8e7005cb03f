"""Deliveries from Slack and Linear, kept in the store before they are answered.

A webhook is answered at once and handled after; a web process that dies in between (or a
Redis that forgets its claims) would lose a request the service believes delivered — Slack
and Linear do not send a delivery again once it was answered 2xx.  So a delivery is written
here first, keyed by what makes it the same request (a Slack message, a Linear session
event): the first writer handles it, a copy that arrives while it is handled or after it was
is a duplicate, and one whose handler vanished is taken up again — by the service's own
retry, or by :func:`claim_stale` in any web process — once its claim lapses.  A delivery that
keeps failing stops being retried after ``MAX_ATTEMPTS``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.offload import off_loop
from core.store import Store, changed, utcnow
from core.store.tables import InboxRow

log = structlog.get_logger(__name__)
MAX_ATTEMPTS = 8
"""Attempts before a delivery that keeps failing is given up (logged); retries back off."""
BACKOFF_CAP = timedelta(minutes=5)
KEEP_HANDLED = timedelta(days=2)
"""How long a handled delivery is remembered: past Slack's and Linear's retries (hours)."""


def accept(store: Store, key: str, surface: str, body: dict[str, Any], lease: timedelta) -> bool:
    """Keep the delivery; ``True`` when it is this caller's to handle now (new, or left
    unfinished by a handler whose claim lapsed), ``False`` for a duplicate."""
    now = utcnow()
    try:
        with store.session(urgent=True) as session:  # the delivery's answer waits for it
            row = session.get(InboxRow, key, with_for_update=True)
            if row is None:
                session.add(
                    InboxRow(
                        key=key,
                        surface=surface,
                        body=json.dumps(body),
                        received_at=now,
                        claimed_until=now + lease,
                        attempts=1,
                    )
                )
                return True
            if row.done_at is not None or (row.claimed_until is not None and row.claimed_until > now):
                return False
            if row.attempts >= MAX_ATTEMPTS:
                return False
            row.claimed_until, row.attempts = now + lease, row.attempts + 1
            return True
    except IntegrityError:  # another process kept the same delivery a moment earlier
        return False


def done(store: Store, key: str) -> None:
    with store.session() as session:
        session.execute(update(InboxRow).where(InboxRow.key == key).values(done_at=utcnow(), claimed_until=None))


def release(store: Store, key: str) -> None:
    """Handling failed: the next copy of the delivery (or :func:`claim_stale`) tries again, after
    a pause that doubles with each attempt (a store or service that is restarting gets time)."""
    with store.session() as session:
        row = session.get(InboxRow, key)
        if row is None:
            return
        pause = min(timedelta(seconds=2**row.attempts), BACKOFF_CAP)
        row.claimed_until = utcnow() + pause
        if row.attempts >= MAX_ATTEMPTS:
            log.error("inbox.given_up", key=key, attempts=row.attempts)


def claim_stale(store: Store, surface: str, lease: timedelta, limit: int = 50) -> list[tuple[str, dict]]:
    """Deliveries of ``surface`` nobody finished and nobody holds, claimed for this caller."""
    now = utcnow()
    claimed = []
    with store.session() as session:
        rows = session.scalars(
            select(InboxRow)
            .where(
                InboxRow.surface == surface,
                InboxRow.done_at.is_(None),
                InboxRow.attempts < MAX_ATTEMPTS,
                or_(InboxRow.claimed_until.is_(None), InboxRow.claimed_until <= now),
            )
            .order_by(InboxRow.received_at)
            .limit(limit)
        ).all()
        for row in rows:
            if _claim(session, row.key, now, lease):
                claimed.append((row.key, json.loads(row.body)))
    if claimed:
        log.info("inbox.taken_up", surface=surface, count=len(claimed))
    return claimed


def _claim(session: Session, key: str, now: datetime, lease: timedelta) -> bool:
    """Compare-and-set: only one process takes an unclaimed delivery."""
    result = session.execute(
        update(InboxRow)
        .where(
            InboxRow.key == key,
            InboxRow.done_at.is_(None),
            or_(InboxRow.claimed_until.is_(None), InboxRow.claimed_until <= now),
        )
        .values(claimed_until=now + lease, attempts=InboxRow.attempts + 1)
    )
    return changed(result) == 1


def forget_handled(store: Store, older_than: timedelta) -> int:
    """Drop finished deliveries past the services' retry windows (Linear retries for 6 hours)."""
    with store.session() as session:
        result = session.execute(
            delete(InboxRow).where(InboxRow.done_at.is_not(None), InboxRow.received_at < utcnow() - older_than)
        )
        return changed(result)


async def handle_kept(
    executor: Executor,
    store: Store,
    key: str | None,
    work: Awaitable[None],
    *,
    failure: str,
    **context: Any,
) -> None:
    """Handle a kept delivery (``key``; ``None`` for one not kept): done when ``work`` succeeds;
    when it raises, logged as ``failure`` and released for another attempt."""
    try:
        await work
    except Exception:
        log.exception(failure, **context)
        if key:
            try:
                await off_loop(executor, release, store, key)
            except Exception as exc:  # its claim lapses instead; the sweep takes it up then
                log.warning("inbox.release_failed", key=key, reason=type(exc).__name__)
        return
    if key:
        await off_loop(executor, done, store, key)


async def take_up_forever(
    store: Store,
    executor: Executor,
    surface: str,
    take_up: Callable[[str, dict], Awaitable[None]],
    *,
    lease: timedelta,
    every: float,
) -> None:
    """In each web process: every ``every`` seconds, hand ``take_up`` the deliveries of
    ``surface`` whose handler vanished (its claim lapsed) or failed."""
    while True:
        await asyncio.sleep(every)
        try:
            stale = await off_loop(executor, claim_stale, store, surface, lease)
        except Exception as exc:  # the store is away: the next round tries again
            log.warning("inbox.sweep_failed", surface=surface, reason=type(exc).__name__)
            continue
        for key, body in stale:
            try:
                await take_up(key, body)
            except Exception:
                log.exception("inbox.take_up_failed", key=key)
                await off_loop(executor, release, store, key)
