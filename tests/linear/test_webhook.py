"""Only Linear may talk to /linear/webhook: HMAC of the raw body, a fresh timestamp, a valid payload."""

from __future__ import annotations

import time

import requests
from sqlalchemy import select

from core.queue import RunQueue
from core.store import Store
from core.store.tables import InboxRow
from tests.fakes.linear import FakeLinear
from tests.support.linear import LinearDelivery, payload
from tests.support.slack import run_count
from tests.support.waiting import wait_settled


def _nothing(fake_linear: FakeLinear, store: Store, queue: RunQueue) -> None:
    wait_settled(store)  # a refused delivery was never kept; a kept one is handled by now
    assert fake_linear.operations == []
    assert run_count(store) == 0
    assert queue.queue.count == 0


def test_forged_signature(deliver: LinearDelivery, fake_linear, store, queue, ada, linear_integration) -> None:
    response = deliver.post(payload("agent_session_event.created"), signature="00" * 32)
    assert response.status_code == 401
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"].endswith("/authentication-required/") and problem["title"] == "Bad signature"
    _nothing(fake_linear, store, queue)


def test_signature_over_reserialised_json_is_refused(deliver: LinearDelivery, fake_linear, store, queue) -> None:
    """The MAC covers the bytes sent: the same JSON with other whitespace does not verify."""
    import hashlib
    import hmac
    import json

    body = {**payload("agent_session_event.created"), "webhookTimestamp": int(time.time() * 1000)}
    compact = json.dumps(body, separators=(",", ":")).encode()
    mac = hmac.new(deliver.secret.encode(), compact, hashlib.sha256).hexdigest()
    response = requests.post(
        deliver.url, data=json.dumps(body, indent=2), headers={"Linear-Signature": mac}, timeout=10
    )
    assert response.status_code == 401
    _nothing(fake_linear, store, queue)


def test_stale_timestamp(deliver: LinearDelivery, fake_linear, store, queue, ada, linear_integration) -> None:
    stale = payload("agent_session_event.created", webhookTimestamp=int(time.time() * 1000) - 120_000)
    assert deliver.post(stale, fresh=False).status_code == 401
    _nothing(fake_linear, store, queue)


def test_malformed_payload(deliver: LinearDelivery, fake_linear, store, queue) -> None:
    refused = deliver.post({"hello": "world"})
    assert refused.status_code == 400 and refused.json()["type"].endswith("/invalid-request/")
    _nothing(fake_linear, store, queue)


def test_a_signed_event_its_model_refuses_is_answered_and_dropped_once(
    deliver: LinearDelivery, fake_linear, store, queue, ada, linear_integration
) -> None:
    """A session event without the issue it is about: answered 200 (Linear must not retry it),
    then dropped by its model — no first thought into a session that can never be served, no
    run, and the inbox marks it handled rather than retrying it."""
    body = payload("agent_session_event.created")
    del body["agentSession"]["issueId"]
    assert deliver.post(body).status_code == 200
    _nothing(fake_linear, store, queue)
    with store.reader() as session:
        kept = session.scalars(select(InboxRow)).all()
    assert [row.done_at is not None for row in kept] == [True]
