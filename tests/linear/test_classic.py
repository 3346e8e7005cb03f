"""The classic path: an Issue update that made the app the delegate or assignee, or a comment
that mentions it, starts a run that answers in comments; the app's own comments do nothing."""

from __future__ import annotations

import pytest

from core.queue import RunQueue
from core.store import Store
from tests.fakes.linear import APP_USER, FakeLinear
from tests.support.linear import LinearDelivery, payload
from tests.support.slack import all_runs, run_count
from tests.support.waiting import wait_for, wait_settled

ISSUE = "b7e4c1d2-3a5f-4e6d-8c9b-0a1f2e3d4c5b"


@pytest.mark.parametrize("name", ["issue.update.delegated_to_app", "issue.update.assigned_to_app"])
def test_issue_given_to_the_app_starts_a_run(
    name: str, deliver: LinearDelivery, fake_linear: FakeLinear, store: Store, queue: RunQueue, ada, linear_integration
) -> None:
    assert deliver.post(payload(name)).status_code == 200
    run = wait_for(lambda: all_runs(store), what="the run")[0]
    assert run.origin.key == f"linear:issue:{ISSUE}"
    assert "Work on this issue: Login form accepts empty passwords" in run.prompt
    comment = wait_for(lambda: fake_linear.calls("commentCreate"), what="the first comment")[0]
    assert comment.variables["input"]["issueId"] == ISSUE
    assert fake_linear.calls("agentActivityCreate") == []
    assert wait_for(lambda: fake_linear.calls("issueUpdate"), what="the move to started")


def test_an_update_that_does_not_hand_the_issue_over_is_ignored(
    deliver: LinearDelivery, fake_linear: FakeLinear, store: Store, ada, linear_integration
) -> None:
    body = payload("issue.update.delegated_to_app")
    body["updatedFrom"] = {"updatedAt": body["updatedFrom"]["updatedAt"], "title": "old title"}
    assert deliver.post(body).status_code == 200
    wait_settled(store)
    assert run_count(store) == 0


def test_comment_mentioning_the_app_starts_a_run(
    deliver: LinearDelivery, fake_linear: FakeLinear, store: Store, ada, linear_integration
) -> None:
    assert deliver.post(payload("comment.create.mention")).status_code == 200
    run = wait_for(lambda: all_runs(store), what="the run")[0]
    assert "Request from Ada Lovelace:\ncan you also update the docs?" in run.prompt


def test_the_apps_own_comment_is_ignored(
    deliver: LinearDelivery, fake_linear: FakeLinear, store: Store, ada, linear_integration
) -> None:
    body = payload("comment.create.mention")
    body["data"]["userId"] = APP_USER
    body["actor"] = {"id": APP_USER, "name": "Oz", "type": "user"}
    assert deliver.post(body).status_code == 200
    bot = payload("comment.create.mention")
    bot["data"]["id"] = "another-comment"
    bot["actor"] = {"id": "integration", "name": "GitHub", "type": "integration"}
    assert deliver.post(bot).status_code == 200
    wait_settled(store)
    assert run_count(store) == 0
    assert [o.field for o in fake_linear.operations if o.field != "viewer"] == []
