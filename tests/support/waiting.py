"""Waiting for what a test expects to happen, with a deadline instead of a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import select

from core.store import Store
from core.store.tables import InboxRow

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 15.0, what: str = "condition") -> T:
    """``predicate()``'s first truthy value; fails naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def kept_deliveries(store: Store) -> list[str]:
    """The webhook deliveries the gateway kept (``core/inbox.py``): only a kept delivery is
    acted on after the answer, so none kept means nothing more will happen."""
    with store.reader() as session:
        return list(session.scalars(select(InboxRow.key)))


def unhandled_deliveries(store: Store) -> list[str]:
    with store.reader() as session:
        return list(session.scalars(select(InboxRow.key).where(InboxRow.done_at.is_(None))))


def wait_settled(store: Store, timeout: float = 15.0) -> None:
    """Every delivery the gateway kept has been handled: whatever a delivery was going to do
    after its answer is done — the exact wait for "and nothing else happened"."""
    wait_for(lambda: not unhandled_deliveries(store), timeout, what="every kept delivery to be handled")
