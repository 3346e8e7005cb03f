"""Several reporter processes follow the same announcements; each run is rendered by one of
them, and when that one dies another takes the run over once the lease lapses."""

from __future__ import annotations

import asyncio
import uuid

import redis
from redis.asyncio import Redis as AsyncRedis

from core import events, runs
from core.models import Origin, Run, RunItem, RunSourceType, RunState
from core.models.wire import RunAgentRequest
from core.reporting import Follower
from core.store import Store
from tests.redis_server import REDIS_URL
from tests.runner_support import Person
from tests.support.people import AGENT_LIMIT


class Recording:
    """A surface that notes who rendered which run (the real surfaces' edits are state-based)."""

    def __init__(self, name: str, log: list[tuple[str, str, RunState]]) -> None:
        self.name, self.log = name, log

    async def report(self, run: Run, item: RunItem) -> None:
        self.log.append((self.name, run.run_id, item.state))


def _run(store: Store, person: Person) -> str:
    origin = Origin(
        source=RunSourceType.SLACK, ref={"team": "T", "channel": "C", "thread_ts": "1"}, key=str(uuid.uuid4())
    )
    request = RunAgentRequest(prompt="x")
    return runs.create(
        store, None, person.principal, request, source=RunSourceType.SLACK, origin=origin, agent_limit=AGENT_LIMIT
    ).run.run_id


def _announce(store: Store, run_id: str, state: RunState, prefix: str) -> None:
    with store.session() as session:
        runs.set_status(session, run_id, state)
    events.announce(redis.Redis.from_url(REDIS_URL), prefix, run_id, state.value)


async def test_one_reporter_renders_each_run_and_another_takes_over_when_it_dies(store: Store, runner_alice: Person):
    log: list[tuple[str, str, RunState]] = []
    prefix = f"oz-test-{uuid.uuid4().hex[:8]}:"
    connections = [AsyncRedis.from_url(REDIS_URL) for _ in range(2)]
    followers = {
        name: Follower(
            store,
            connection,
            {RunSourceType.SLACK: Recording(name, log)},
            interval=0.05,
            sweep_every=0.3,
            lease_seconds=1.0,
            prefix=prefix,
        )
        for name, connection in zip(("a", "b"), connections, strict=True)
    }
    stops = {name: asyncio.Event() for name in followers}
    tasks = {name: asyncio.create_task(f.run(stops[name])) for name, f in followers.items()}
    await asyncio.sleep(0.4)

    run_ids = [_run(store, runner_alice) for _ in range(6)]
    for state in (RunState.PENDING, RunState.CLAIMED, RunState.INPROGRESS):
        for run_id in run_ids:
            _announce(store, run_id, state, prefix)
        await asyncio.sleep(0.3)
    for run_id in run_ids:
        holders = {who for who, rid, _state in log if rid == run_id}
        assert len(holders) == 1, (run_id, holders)  # never both

    # The reporter holding the first run dies (no goodbye: its lease simply stops being renewed).
    dead = next(who for who, rid, _state in log if rid == run_ids[0])
    survivor = "b" if dead == "a" else "a"
    tasks[dead].cancel()
    await asyncio.sleep(0)
    dying_renders = len(log)
    for run_id in run_ids:
        _announce(store, run_id, RunState.SUCCEEDED, prefix)
    await asyncio.sleep(2.0)  # past the lease, and a sweep or two

    after = log[dying_renders:]
    finals = [(who, rid) for who, rid, state in after if state == RunState.SUCCEEDED]
    assert {rid for _who, rid in finals} == set(run_ids)  # every run's end was rendered
    assert {who for who, _rid in finals} == {survivor}  # by the one still alive

    stops[survivor].set()
    await tasks[survivor]
    for connection in connections:
        await connection.aclose()
