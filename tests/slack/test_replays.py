"""Every recorded Events API payload, replayed with its expected effect (Zulip's way: one line
per real payload; a new event type adds its payload and its line)."""

from __future__ import annotations

import pytest

from core.queue import RunQueue
from core.store import Store
from tests.fakes.slack import FakeSlack
from tests.support.replay import Replay
from tests.support.slack import SlackDelivery, event

SAYS = {"chat.postMessage", "chat.postEphemeral", "chat.update", "reactions.add", "assistant.threads.setStatus"}

TRIGGERS = [
    ("event.app_mention.thread", "can you take this one? see the stack trace above"),
    ("event.app_mention.channel", "the login form accepts empty passwords, please fix it in acme/web"),
    ("event.message.im", "add a healthcheck endpoint to acme/api"),
]
NOOPS = [
    "event.message.bot_message",  # a bot's post (our own included): never acted on
    "event.message.message_changed",  # an edit is not a new request
    "event.reaction_added",  # a reaction on a message that is no run's: nothing to cancel
]


@pytest.fixture
def replay(deliver: SlackDelivery, fake_slack: FakeSlack, store: Store, queue: RunQueue) -> Replay:
    return Replay(
        post=lambda body: deliver.post(body).status_code,
        load=event,
        store=store,
        queue=queue,
        said=lambda: [c.method for c in fake_slack.calls if c.method in SAYS],
    )


@pytest.mark.parametrize(("fixture", "expected"), TRIGGERS)
def test_a_recorded_request_starts_one_run(
    replay: Replay, fake_slack: FakeSlack, linked_ada, slack_integration, fixture: str, expected: str
) -> None:
    replay.check_trigger(fixture, expected)
    assert fake_slack.calls_to("reactions.add")  # the person sees :eyes: on their request


@pytest.mark.parametrize("fixture", NOOPS)
def test_a_recorded_event_that_asks_nothing_changes_nothing(
    replay: Replay, linked_ada, slack_integration, fixture: str
) -> None:
    replay.expect_noop(fixture)
