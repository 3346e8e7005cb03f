"""The shapes a fuzzer reaches rarely, each tried on every signed front door: JSON nested past
any parser's depth, bytes that are not UTF-8, a body that is JSON but not an object.  Signed,
so they pass the signature check and meet the parsing itself: a 4xx, never a 5xx."""

from __future__ import annotations

import pytest
import requests

from core.queue import RunQueue
from core.store import Store
from tests.fuzz.test_signed_deliveries import signed_raw
from tests.support.fuzz import OpenGateway, row_counts

BODIES = {
    "nested": b"[" * 200_000 + b"]" * 200_000,
    "nested-object": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "not-utf-8": b'{"type": "\xff\xfe"}',
    "not-an-object": b'"event_callback"',
    "empty": b"",
}
FIXTURES = {
    "slack": "event.app_mention.thread.json",
    "linear": "comment.create.mention.json",
    "github": "installation.created.json",
}


@pytest.mark.parametrize("body", sorted(BODIES))
@pytest.mark.parametrize("surface", sorted(FIXTURES))
def test_unreadable_signed_bodies_are_a_4xx(
    surface: str, body: str, open_gateway: OpenGateway, store: Store, queue: RunQueue
):
    before = row_counts(store)
    request = signed_raw(open_gateway, surface, FIXTURES[surface], BODIES[body], "Comment")
    response = requests.post(
        open_gateway.server.url + request["path"], data=request["data"], headers=request["headers"], timeout=30
    )
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert row_counts(store) == before and queue.queue.count == 0
