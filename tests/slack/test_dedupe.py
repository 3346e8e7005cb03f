"""Slack retries a delivery it thinks was lost, and a workspace may reach us over HTTP and Socket
Mode at once: however often one message arrives, it makes exactly one run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.queue import RunQueue
from core.settings import Settings
from core.store import Store
from tests.fakes.slack import FakeSlack, event_fixture
from tests.live_server import LiveServer, gateway_server
from tests.runner_support import settings_with
from tests.support.slack import SlackDelivery, all_runs, event, run_count
from tests.support.waiting import wait_for, wait_settled


def test_triple_delivery_makes_one_run(
    deliver: SlackDelivery, fake_slack: FakeSlack, store: Store, queue: RunQueue, linked_ada, slack_integration
) -> None:
    body = event("event.app_mention.thread")
    answers = [deliver.post(body).status_code, deliver.post(body, retry=1).status_code]
    answers.append(deliver.post(body, retry=2).status_code)
    assert answers == [200, 200, 200]
    wait_for(lambda: all_runs(store), what="the run")
    wait_settled(store)  # the one delivery kept is handled; the retries were answered as duplicates
    assert run_count(store) == 1
    assert queue.queue.count == 1
    assert len(fake_slack.calls_to("reactions.add")) == 1
    assert len(fake_slack.calls_to("chat.postMessage")) == 1


def test_same_message_as_mention_and_as_message_event_makes_one_run(
    deliver: SlackDelivery, fake_slack: FakeSlack, store: Store, linked_ada, slack_integration
) -> None:
    """A DM that also mentions the app can arrive as ``message`` and as ``app_mention``."""
    dm = event("event.message.im")
    mention = event("event.message.im", type="app_mention", event_id="Ev08MFMKZZ")
    mention["event"].pop("channel_type")
    assert deliver.post(dm).status_code == 200
    assert deliver.post(mention).status_code == 200
    wait_for(lambda: all_runs(store), what="the run")
    wait_settled(store)
    assert run_count(store) == 1


@pytest.fixture
def socket_gateway(
    slack_settings: Settings, store: Store, queue: RunQueue, fake_slack: FakeSlack
) -> Iterator[LiveServer]:
    """A gateway with both transports: the Events API route and a Socket Mode connection."""
    settings = settings_with(slack_settings, slack_app_token="xapp-1-A0MDYCDME-" + "7" * 24)
    with gateway_server(settings, store, queue) as server:
        wait_for(lambda: fake_slack.socket_connections, what="the Socket Mode connection")
        yield server


def test_socket_mode_delivery_starts_a_run_and_is_acknowledged(
    socket_gateway: LiveServer, fake_slack: FakeSlack, store: Store, linked_ada, slack_integration
) -> None:
    envelope = event_fixture("socket_mode.events_api")
    fake_slack.push_envelope(envelope)
    wait_for(lambda: envelope["envelope_id"] in fake_slack.acks, what="the envelope's acknowledgement")
    run = wait_for(lambda: all_runs(store), what="the run")[0]
    assert "the login form accepts empty passwords" in run.prompt
    assert fake_slack.calls_to("apps.connections.open")[0].token.startswith("xapp-")


def test_same_event_over_http_and_socket_mode_makes_one_run(
    socket_gateway: LiveServer, signing_secret: str, fake_slack: FakeSlack, store: Store, linked_ada, slack_integration
) -> None:
    envelope = event_fixture("socket_mode.events_api")
    http = SlackDelivery(f"{socket_gateway.url}/slack/events", signing_secret)
    assert http.post(envelope["payload"]).status_code == 200
    fake_slack.push_envelope(envelope)
    wait_for(lambda: envelope["envelope_id"] in fake_slack.acks, what="the envelope's acknowledgement")
    wait_for(lambda: all_runs(store), what="the run")
    wait_settled(store)
    assert run_count(store) == 1
    assert len(fake_slack.calls_to("chat.postMessage")) == 1
