"""A mention the gateway cannot act on gets a private, catalog-coded explanation and no run."""

from __future__ import annotations

import pytest

from core import budgets, environments, integrations
from core.models import IntegrationProvider, Principal
from core.queue import RunQueue
from core.store import Store
from tests.fakes.slack import FakeSlack
from tests.support.slack import ADA, SlackDelivery, all_runs, event
from tests.support.waiting import wait_for


def _explanation(fake_slack: FakeSlack) -> str:
    call = wait_for(lambda: fake_slack.calls_to("chat.postEphemeral"), what="the explanation")[0].params
    assert call["user"] == ADA
    return call["text"] + str(call.get("blocks"))


def _nothing_started(fake_slack: FakeSlack, store: Store, queue: RunQueue) -> None:
    assert all_runs(store) == []
    assert queue.queue.count == 0
    assert fake_slack.calls_to("chat.postMessage") == []
    assert fake_slack.calls_to("reactions.add") == []


def test_without_integration(deliver: SlackDelivery, fake_slack: FakeSlack, store: Store, queue: RunQueue, linked_ada):
    deliver.post(event("event.app_mention.thread"))
    text = _explanation(fake_slack)
    assert "integration_not_configured" in text
    assert "oz-gateway integration create slack" in text
    _nothing_started(fake_slack, store, queue)


@pytest.mark.parametrize("change", ["disabled", "no_environment", "deleted_environment"])
def test_integration_problems(
    change: str,
    deliver: SlackDelivery,
    fake_slack: FakeSlack,
    store: Store,
    queue: RunQueue,
    linked_ada: Principal,
    slack_integration: str,
) -> None:
    with store.session() as session:
        if change == "disabled":
            integrations.update_integration(session, linked_ada, IntegrationProvider.SLACK, enabled=False)
        elif change == "no_environment":
            integrations.update_integration(session, linked_ada, IntegrationProvider.SLACK, remove_environment=True)
        else:
            environments.delete_environment(session, linked_ada, slack_integration, force=True)
    deliver.post(event("event.app_mention.thread"))
    text = _explanation(fake_slack)
    expected = {
        "disabled": "integration_disabled",
        "no_environment": "integration_not_configured",
        "deleted_environment": "integration_not_configured",  # deleting it (--force) detached it
    }[change]
    assert expected in text
    _nothing_started(fake_slack, store, queue)


def test_empty_mention_asks_what_to_do(
    deliver: SlackDelivery, fake_slack: FakeSlack, store: Store, queue: RunQueue, linked_ada, slack_integration
) -> None:
    deliver.post(event("event.app_mention.channel", text="<@U0LAN0Z89>"))
    assert "Tell me what to do" in _explanation(fake_slack)
    _nothing_started(fake_slack, store, queue)


@pytest.mark.parametrize("whose", ["person", "team"])
def test_a_spent_budget_is_explained_privately_and_starts_nothing(
    whose: str,
    deliver: SlackDelivery,
    fake_slack: FakeSlack,
    store: Store,
    queue: RunQueue,
    linked_ada: Principal,
    slack_integration: str,
) -> None:
    with store.session() as session:
        account = linked_ada.uid if whose == "person" else budgets.TEAM
        budgets.set_budget(session, linked_ada.team_uid, account, 0.0)
    deliver.post(event("event.app_mention.thread"))
    text = _explanation(fake_slack)
    if whose == "person":
        assert "Your monthly budget is spent" in text and "insufficient_credits" in text
        assert "oz-gateway budget set --person" in text
    else:
        assert "The team's monthly budget is spent" in text and "budget_exceeded" in text
    assert "$0.00 of" in text
    _nothing_started(fake_slack, store, queue)
