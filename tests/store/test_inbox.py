"""The inbox keeps a delivery once, hands it to one handler, takes it up again when its handler
vanished, backs off from one that keeps failing, and forgets handled ones after a while."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from core import inbox
from core.store import Store
from core.store.tables import InboxRow

LEASE = timedelta(seconds=60)


def rows(store: Store) -> int:
    with store.reader() as session:
        return session.scalar(select(func.count()).select_from(InboxRow))


def test_one_delivery_one_handler_and_a_vanished_handler_is_replaced(store: Store):
    body = {"type": "event_callback", "text": "nul \u0000 and \U0001f600"}
    assert inbox.accept(store, "k1", "slack", body, LEASE) is True
    assert inbox.accept(store, "k1", "slack", body, LEASE) is False  # a retry while it is handled
    assert inbox.claim_stale(store, "slack", LEASE) == []  # its handler's claim still holds
    assert inbox.accept(store, "k2", "slack", body, timedelta(seconds=-1)) is True  # a claim that lapsed
    assert inbox.claim_stale(store, "slack", LEASE) == [("k2", body)]
    inbox.done(store, "k1")
    assert inbox.accept(store, "k1", "slack", body, LEASE) is False  # handled: a duplicate for good


def test_a_failing_delivery_backs_off_then_is_given_up(store: Store):
    assert inbox.accept(store, "k", "linear", {}, LEASE)
    inbox.release(store, "k")
    assert inbox.claim_stale(store, "linear", LEASE) == []  # backing off
    with store.session() as session:
        row = session.get(InboxRow, "k")
        row.claimed_until, row.attempts = None, inbox.MAX_ATTEMPTS
    assert inbox.claim_stale(store, "linear", LEASE) == []  # given up


def test_handled_deliveries_are_forgotten_after_a_while(store: Store):
    for key in ("a", "b"):
        inbox.accept(store, key, "slack", {}, LEASE)
    inbox.done(store, "a")
    assert inbox.forget_handled(store, older_than=timedelta(seconds=-1)) == 1
    assert rows(store) == 1  # the unhandled one stays
