"""Only Slack may talk to /slack/events: bolt checks every delivery's signature and age."""

from __future__ import annotations

import time

from core.queue import RunQueue
from core.store import Store
from tests.fakes.slack import FakeSlack, event_fixture
from tests.support.slack import SlackDelivery, event, run_count
from tests.support.waiting import kept_deliveries


def test_url_verification_handshake_is_answered(deliver: SlackDelivery) -> None:
    body = event_fixture("url_verification")
    response = deliver.post(body)
    assert response.status_code == 200
    assert response.json() == {"challenge": body["challenge"]} or response.text == body["challenge"]


def test_forged_signature_is_refused_and_nothing_happens(
    deliver: SlackDelivery, fake_slack: FakeSlack, store: Store, queue: RunQueue, linked_ada, slack_integration
) -> None:
    forged = SlackDelivery(deliver.url, "not-the-signing-secret")
    response = forged.post(event("event.app_mention.thread"))
    assert response.status_code == 401
    assert kept_deliveries(store) == []  # refused before it was kept: nothing happens after the answer
    assert fake_slack.calls == []
    assert run_count(store) == 0
    assert queue.queue.count == 0


def test_stale_signature_is_refused(
    deliver: SlackDelivery, fake_slack: FakeSlack, store: Store, linked_ada, slack_integration
) -> None:
    response = deliver.post(event("event.app_mention.thread"), timestamp=int(time.time()) - 10 * 60)
    assert response.status_code == 401
    assert kept_deliveries(store) == []
    assert fake_slack.calls == []
    assert run_count(store) == 0


def test_missing_signature_is_refused(deliver: SlackDelivery, store: Store) -> None:
    import requests

    response = requests.post(deliver.url, json=event("event.app_mention.thread"), timeout=10)
    assert response.status_code == 401
    assert run_count(store) == 0


def test_socket_mode_only_gateway_has_no_events_endpoint(slack_settings, store, queue, fake_slack) -> None:
    """Without a signing secret no HTTP delivery can be verified, so none is accepted at all."""
    import requests

    from tests.live_server import gateway_server
    from tests.runner_support import settings_with

    socket_only = settings_with(slack_settings, slack_signing_secret=None, slack_app_token="xapp-1-A-" + "9" * 20)
    with gateway_server(socket_only, store, queue) as server:
        response = requests.post(f"{server.url}/slack/events", json=event("event.app_mention.thread"), timeout=10)
    assert response.status_code in (404, 405)
    assert run_count(store) == 0


def test_a_signed_body_that_is_not_json_is_a_400_not_a_500(
    deliver: SlackDelivery, fake_slack: FakeSlack, store: Store, queue: RunQueue, linked_ada, slack_integration
) -> None:
    import requests

    for raw in ('{"type": "event_callback", "event": {', "[" * 100_000 + "]" * 100_000, '"just a string"'):
        response = requests.post(deliver.url, data=raw, headers=deliver.headers(raw), timeout=10)
        assert response.status_code == 400, (raw[:40], response.status_code, response.text[:200])
        assert response.headers["content-type"].startswith("application/problem+json")
    # Not UTF-8: Slack never sends it and its SDK cannot even check the signature; refused all the same.
    headers = deliver.headers("x")
    response = requests.post(deliver.url, data=b"\xff\xfe{", headers=headers, timeout=10)
    assert response.status_code == 401
    assert kept_deliveries(store) == []
    assert fake_slack.calls == [] and run_count(store) == 0 and queue.queue.count == 0
