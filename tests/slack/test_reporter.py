"""The reporter renders state, coalesces bursts, and waits out Slack's rate limits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import timedelta

import redis
from redis.asyncio import Redis as AsyncRedis

from bots.slack.app import build_reporter
from core import events, runs, sweeps
from core.models import Origin, Principal, RunSourceType, RunState
from core.models.wire import FollowupRequest, RunAgentRequest
from core.queue import RunQueue
from core.reporting import Coalescer, Follower, load_for_report
from core.settings import Settings
from core.store import Store, utcnow
from core.vault import Vault
from tests.fakes.slack import TEAM, FakeSlack
from tests.redis_server import REDIS_URL
from tests.support.people import AGENT_LIMIT


def _slack_run(store: Store, who: Principal, fake: FakeSlack) -> str:
    posted = fake._chat_postMessage({"channel": "C1", "text": "On it", "thread_ts": "1.0"})
    origin = Origin(
        source=RunSourceType.SLACK,
        ref={"team": TEAM, "channel": "C1", "thread_ts": "1.0", "status_ts": posted["ts"]},
        key="slack:T:C1:1.0",
    )
    created = runs.create(
        store,
        None,
        who,
        RunAgentRequest(prompt="fix it"),
        source=RunSourceType.SLACK,
        origin=origin,
        agent_limit=AGENT_LIMIT,
    )
    return created.run.run_id


async def test_a_rate_limited_update_is_retried_after_retry_after(
    slack_settings: Settings, store: Store, fake_slack: FakeSlack, ada: Principal
) -> None:
    run_id = _slack_run(store, ada, fake_slack)
    connection = AsyncRedis.from_url(REDIS_URL)
    reporter = build_reporter(slack_settings, store, Vault.from_settings(slack_settings))
    fake_slack.rate_limit("chat.update", 1)
    await reporter.report(*load_for_report(store, run_id))
    await connection.aclose()
    updates = fake_slack.calls_to("chat.update")
    assert len(updates) == 2  # the 429, then the retry that went through
    status = next(iter(fake_slack.messages.values()))
    assert status.edits and run_id[:8] in status.everything


async def test_coalescer_renders_a_burst_once_plus_a_trailing_render() -> None:
    pokes = 0
    seen: list[int] = []  # how many pokes had arrived when each render ran

    async def render(_key: str) -> None:
        seen.append(pokes)

    coalescer = Coalescer(render, interval=0.3)
    for _ in range(50):  # a burst shorter than the interval
        pokes += 1
        coalescer.poke("run")
        await asyncio.sleep(0.004)
    await coalescer.drain()  # every scheduled render, the trailing one included
    assert seen == [1, 50]  # the first poke at once; everything after it in one render after the burst


async def test_follower_turns_a_chatty_run_into_few_edits_ending_on_the_latest_state(
    slack_settings: Settings, store: Store, fake_slack: FakeSlack, ada: Principal
) -> None:
    run_id = _slack_run(store, ada, fake_slack)
    connection = AsyncRedis.from_url(REDIS_URL)
    reporter = build_reporter(slack_settings, store, Vault.from_settings(slack_settings))
    prefix = slack_settings.redis_prefix
    follower = Follower(store, connection, {RunSourceType.SLACK: reporter}, prefix=prefix, interval=0.5, sweep_every=60)
    stop = asyncio.Event()
    task = asyncio.create_task(follower.run(stop))
    await asyncio.sleep(0.3)  # subscribed, and the start-up sweep rendered the run once
    sync = redis.Redis.from_url(REDIS_URL)
    for step in range(40):
        with store.session() as session:
            if step == 0:
                runs.set_status(session, run_id, RunState.PENDING)
                runs.set_status(session, run_id, RunState.CLAIMED)
                runs.set_status(session, run_id, RunState.INPROGRESS)
            runs.note_progress(session, run_id, f"Working: step {step}")
        events.announce(sync, prefix, run_id, "INPROGRESS")
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.8)
    stop.set()
    await task
    await connection.aclose()
    status = next(iter(fake_slack.messages.values()))
    assert "step 39" in status.text
    assert len(fake_slack.calls_to("chat.update")) <= 4  # 40 announcements, a handful of edits


async def test_a_long_lived_reporter_forgets_old_runs() -> None:
    from core.reporting import Coalescer, Recent

    shown = Recent(limit=100)
    for n in range(5000):
        shown[f"run-{n}"] = "rendered"
    assert len(shown) == 100 and "run-4999" in shown and "run-0" not in shown

    rendered: list[str] = []

    async def render(key: str) -> None:
        rendered.append(key)

    coalescer = Coalescer(render, interval=0)
    for n in range(300):
        coalescer.poke(f"run-{n}")
    await coalescer.drain()
    assert len(rendered) == 300
    assert coalescer._locks == {}  # no lock per finished render is kept


async def test_text_the_agent_or_people_wrote_cannot_ping_the_channel_or_forge_links(
    slack_settings: Settings, store: Store, fake_slack: FakeSlack, ada: Principal
) -> None:
    """Only the links and mentions the gateway builds are live: an agent steered (by an issue,
    a file) into printing ``<!channel>`` must not page everyone from the final post."""
    from core.models import StatusMessage
    from runner.pulls import PullRequest, record_pull_requests

    posted = fake_slack._chat_postMessage({"channel": "C1", "text": "On it", "thread_ts": "1.0"})
    origin = Origin(
        source=RunSourceType.SLACK,
        ref={"team": TEAM, "channel": "C1", "thread_ts": "1.0", "status_ts": posted["ts"]},
        key="slack:T:C1:1.0",
    )
    request = RunAgentRequest(prompt="fix it", title="<!here> deploy & <@U0BOB>")
    run_id = runs.create(
        store, None, ada, request, source=RunSourceType.SLACK, origin=origin, agent_limit=AGENT_LIMIT
    ).run.run_id
    summary = "<!channel> Done. Log in at <https://evil.example/login|your GitHub> & thank <@U0ALICE>"
    with store.session() as session:
        for state in (RunState.PENDING, RunState.CLAIMED, RunState.INPROGRESS):
            runs.set_status(session, run_id, state)
        record_pull_requests(session, run_id, [PullRequest("acme/api", "oz/x", "https://github.com/acme/api/pull/7")])
        runs.set_status(session, run_id, RunState.SUCCEEDED, status_message=StatusMessage(message=summary))
    connection = AsyncRedis.from_url(REDIS_URL)
    reporter = build_reporter(slack_settings, store, Vault.from_settings(slack_settings))
    await reporter.report(*load_for_report(store, run_id))
    await connection.aclose()

    said = json.dumps([c.params for c in fake_slack.calls if c.method in ("chat.postMessage", "chat.update")])
    for live in ("<!channel>", "<!here>", "<@U0ALICE>", "<@U0BOB>", "<https://evil.example"):
        assert json.dumps(live)[1:-1] not in said, live
    assert "&lt;!channel&gt; Done." in said and "&amp; thank" in said  # still readable, just inert
    assert "<https://github.com/acme/api/pull/7>" in said  # the gateway's own link stays a link


async def test_every_state_change_reaches_the_thread_at_once_not_at_the_sweep(
    slack_settings: Settings, store: Store, queue: RunQueue, fake_slack: FakeSlack, ada: Principal
) -> None:
    """A cancel from the API or the console, a follow-up that re-opens the run, a sweep that
    gives up on a dead worker: each commits, then announces, so the thread shows it within a
    render (the reporter's sweep here comes only once a minute)."""
    run_id = _slack_run(store, ada, fake_slack)
    connection = AsyncRedis.from_url(REDIS_URL)
    reporter = build_reporter(slack_settings, store, Vault.from_settings(slack_settings))
    follower = Follower(
        store, connection, {RunSourceType.SLACK: reporter}, prefix=queue.prefix, interval=0.2, sweep_every=60
    )
    stop = asyncio.Event()
    task = asyncio.create_task(follower.run(stop))
    status = next(iter(fake_slack.messages.values()))
    await _within(2.0, lambda: status.edits, "the start-up render")

    await asyncio.to_thread(runs.cancel, store, queue, ada, run_id)
    await _within(2.0, lambda: "Cancelled" in status.text, "the cancel")

    await asyncio.to_thread(runs.followup, store, queue, ada, run_id, FollowupRequest(message="try again"))
    await _within(2.0, lambda: "Cancelled" not in status.text, "the re-open")

    with store.session() as session:
        runs.set_status(session, run_id, RunState.PENDING)
        runs.set_status(session, run_id, RunState.CLAIMED)
        runs.set_status(session, run_id, RunState.INPROGRESS, heartbeat_at=utcnow() - timedelta(minutes=5))
    await asyncio.to_thread(sweeps.recover_abandoned, store, queue, after=timedelta(minutes=1))
    await _within(2.0, lambda: "stopped unexpectedly" in status.everything, "the sweep's failure")

    stop.set()
    await task
    await connection.aclose()


async def _within(seconds: float, predicate: Callable[[], object], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, f"{what} did not reach the thread within {seconds} s"
        await asyncio.sleep(0.05)
