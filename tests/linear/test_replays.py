"""Every recorded Linear webhook payload that asks for work, replayed with the run it starts
(Zulip's way: one line per real payload)."""

from __future__ import annotations

import pytest

from core.queue import RunQueue
from core.store import Store
from tests.fakes.linear import FakeLinear
from tests.support.linear import LinearDelivery, payload
from tests.support.replay import Replay

READS = {"viewer", "user", "issue", "organization", "workflowStates", "team"}

TRIGGERS = [
    ("agent_session_event.created", "please fix this and add a test"),
    ("agent_session_event.created.delegated", "Work on this issue: Login form accepts empty passwords"),
    ("agent_session_event.prompted", "Also handle whitespace-only passwords"),  # a prompt in a session with no run
    ("comment.create.mention", "can you also update the docs?"),
    ("issue.update.delegated_to_app", "Work on this issue: Login form accepts empty passwords"),
    ("issue.update.assigned_to_app", "Work on this issue: Login form accepts empty passwords"),
]


@pytest.fixture
def replay(deliver: LinearDelivery, fake_linear: FakeLinear, store: Store, queue: RunQueue) -> Replay:
    return Replay(
        post=lambda body: deliver.post(body).status_code,
        load=payload,
        store=store,
        queue=queue,
        said=lambda: [o.field for o in fake_linear.operations if o.field not in READS],
    )


@pytest.mark.parametrize(("fixture", "expected"), TRIGGERS)
def test_a_recorded_request_starts_one_run(
    replay: Replay, ada, linear_integration, fixture: str, expected: str
) -> None:
    run = replay.check_trigger(fixture, expected)
    assert run.metadata.get("ticket_source") == "LINEAR"
