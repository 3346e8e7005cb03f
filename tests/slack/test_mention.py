"""@Oz in a thread: :eyes:, an "On it" reply with the run's link, and a run whose prompt is the thread."""

from __future__ import annotations

import time

from core.models import RunSourceType, RunState
from core.queue import RunQueue
from core.store import Store
from tests.fakes.slack import BOT_USER, FakeSlack
from tests.support.slack import ADA, SlackDelivery, all_runs, event
from tests.support.waiting import wait_for, wait_settled

CHANNEL = "C0LAN2Q65"
THREAD = "1732320100.000200"


def test_mention_in_thread_starts_a_run_with_the_thread_as_prompt(
    deliver: SlackDelivery, fake_slack: FakeSlack, store: Store, queue: RunQueue, linked_ada, slack_integration
) -> None:
    fake_slack.paginate = True  # the thread comes in two conversations.replies pages
    started = time.monotonic()
    response = deliver.post(event("event.app_mention.thread"))
    acked = time.monotonic() - started
    assert response.status_code == 200
    assert acked < 3.0  # Slack's limit; the slow work happens after the answer

    wait_for(lambda: fake_slack.calls_to("reactions.add"), what=":eyes:")
    reaction = fake_slack.calls_to("reactions.add")[0].params
    assert reaction.items() >= {"channel": CHANNEL, "timestamp": "1732320300.000400", "name": "eyes"}.items()

    run = wait_for(lambda: all_runs(store), what="the run")[0]
    assert run.source == RunSourceType.SLACK
    assert run.creator_uid == linked_ada.uid
    assert run.state == RunState.QUEUED
    assert run.environment_id == slack_integration
    assert queue.queue.job_ids == [run.run_id]
    assert run.origin.trigger_url == f"https://acme.slack.com/archives/{CHANNEL}/p1732320300000400"

    # The prompt: the integration's instructions, the request, then the thread by name.
    prompt = run.prompt
    assert prompt.startswith("Keep changes small.")
    assert "Request from Ada Lovelace:\ncan you take this one? see the stack trace above" in prompt
    assert "Grace Hopper wrote:\n> Login is broken for some users" in prompt
    assert "Ada Lovelace wrote:\n> I can reproduce it on staging" in prompt
    assert "trace.txt (https://acme.slack.com/files/U0G9QF9C6/F0S43PZDF/trace.txt)" in prompt
    assert "Deploy 4812 finished" not in prompt  # another bot's chatter
    assert BOT_USER not in prompt
    assert len(fake_slack.calls_to("conversations.replies")) == 2  # both pages read

    # One reply in the thread, "On it", then edited in place to carry the run's link.
    wait_for(lambda: fake_slack.calls_to("chat.update"), what="the status message edited")
    replies = fake_slack.in_thread(CHANNEL, THREAD)
    assert len(replies) == 1
    status = replies[0]
    assert "On it" in status.everything
    assert run.run_id[:8] in status.everything
    assert f"http://gateway.test/console/runs/{run.run_id}" in status.everything
    assert run.origin.ref["status_ts"] == status.ts
    assert fake_slack.calls_to("chat.postEphemeral") == []


def test_direct_message_starts_a_run(
    deliver: SlackDelivery, fake_slack: FakeSlack, store: Store, linked_ada, slack_integration
) -> None:
    assert deliver.post(event("event.message.im")).status_code == 200
    run = wait_for(lambda: all_runs(store), what="the run")[0]
    assert "add a healthcheck endpoint to acme/api" in run.prompt
    assert "Slack direct message" in run.prompt
    posted = wait_for(lambda: fake_slack.in_thread("D0PNCRP9N", "1732320400.000500"), what="On it")
    assert len(posted) == 1
    assert fake_slack.calls_to("conversations.replies") == []  # a message of its own has no thread to read


def test_channel_mention_replies_in_a_new_thread(
    deliver: SlackDelivery, fake_slack: FakeSlack, store: Store, linked_ada, slack_integration
) -> None:
    assert deliver.post(event("event.app_mention.channel")).status_code == 200
    run = wait_for(lambda: all_runs(store), what="the run")[0]
    assert run.title == "the login form accepts empty passwords, please fix it in acme/web"
    assert wait_for(lambda: fake_slack.in_thread(CHANNEL, "1732320000.000100"), what="On it")
    assert run.origin.key == f"slack:T061EG9R6:{CHANNEL}:1732320000.000100"
    assert ADA not in run.prompt


def test_ignored_events_do_nothing(
    deliver: SlackDelivery, fake_slack: FakeSlack, store: Store, linked_ada, slack_integration
) -> None:
    for name in ("event.message.bot_message", "event.message.message_changed"):
        assert deliver.post(event(name)).status_code == 200
    own = event("event.message.im", bot_id="B0LAN0Z8A", user=BOT_USER, event_id="Ev0OWN")
    assert deliver.post(own).status_code == 200
    channel_chatter = event("event.message.im", channel_type="channel", event_id="Ev0CHAT")
    assert deliver.post(channel_chatter).status_code == 200
    wait_settled(store)  # nothing of these was even kept: none is a person's request
    assert all_runs(store) == []
    assert [c.method for c in fake_slack.calls if c.method != "auth.test"] == []


def test_a_huge_thread_keeps_the_prompt_within_its_budget_and_the_request_whole(
    deliver: SlackDelivery, fake_slack: FakeSlack, store: Store, linked_ada, slack_integration
) -> None:
    from core.prompts import DEFAULT_BUDGET

    chatter = [
        {"type": "message", "user": "U0G9QF9C6", "ts": f"1732320100.{i:06d}", "text": f"log line {i} " + "x" * 4000}
        for i in range(200, 1200)  # a thousand 4 KB messages: 4 MB of thread
    ]
    mention = event("event.app_mention.thread")["event"]
    fake_slack.threads[f"{CHANNEL}:{THREAD}"] = [*chatter, mention]

    assert deliver.post(event("event.app_mention.thread")).status_code == 200

    run = wait_for(lambda: all_runs(store), what="the run", timeout=30)[0]
    assert len(run.prompt) <= DEFAULT_BUDGET + 2000  # the budget, plus the fixed frame around it
    assert "can you take this one? see the stack trace above" in run.prompt
    assert "log line 1199" in run.prompt and "log line 700 " not in run.prompt  # the newest kept, not the middle


def test_a_mention_that_is_only_whitespace_starts_nothing_and_says_how_to_ask(
    deliver: SlackDelivery, fake_slack: FakeSlack, store: Store, queue: RunQueue, linked_ada, slack_integration
) -> None:
    body = event("event.app_mention.channel", text="<@U0LAN0Z89>   \n\t  ")
    assert deliver.post(body).status_code == 200
    told = wait_for(lambda: fake_slack.calls_to("chat.postEphemeral"), what="the private hint")[0]
    assert "Tell me what to do" in told.params["text"]
    wait_settled(store)
    assert all_runs(store) == [] and queue.queue.count == 0
