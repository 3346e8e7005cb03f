"""The gateway under faults: triggers from every surface, sent with their services' real
retries, while a driver kills and restarts every process (web, a worker with its work horse,
the reporter, the scheduler), restarts Redis (which keeps nothing: the queue is lost) and
PostgreSQL, and makes Slack and Linear answer 429 and 5xx in bursts.

Afterwards, with everything up again: one run per trigger, every run final, one closing post
per Slack thread and Linear session matching the run's state, no agent started twice, no
container or workspace left.  The figures are printed as one JSON line.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import pytest
from sqlalchemy import func, select

from core.models import RunState
from core.models.wire import TERMINAL_STATES
from core.store import Store
from core.store.tables import RunRow
from runner.sandbox import containers_of
from tests.cluster import Cluster, Sender, linear_finals, provision, slack_finals, states_by_origin, wait_settled

pytestmark = pytest.mark.timeout(900)
TRIGGERS = {"slack": 20, "linear": 20, "api": 20}
OK_STATES = (RunState.SUCCEEDED, RunState.CANCELLED)


@pytest.fixture
def cluster(tmp_path: Path, test_image: str) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path, test_image)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


class Chaos:
    """Faults at random moments until stopped; each one a crash a real deployment sees."""

    def __init__(self, cluster: Cluster, seed: int) -> None:
        self.cluster = cluster
        self.random = random.Random(seed)
        self.done = threading.Event()
        self.faults: list[str] = []

    def run(self) -> None:
        actions: dict[str, Callable[[], None]] = {
            "kill web": lambda: self.cluster.restart("web"),
            "kill worker": lambda: self.cluster.restart("worker"),
            "kill reporter": lambda: self.cluster.restart("reporter"),
            "kill scheduler": lambda: self.cluster.restart("scheduler"),
            "restart redis": self.cluster.restart_redis,
            "restart postgres": self.cluster.restart_postgres,
            "slack 429s": lambda: self.cluster.slack.fail_next(6, 429, "1"),
            "slack 5xx": lambda: self.cluster.slack.fail_next(4, 503),
            "linear 5xx": lambda: self.cluster.linear.fail_next(4, 502),
        }
        order: list[str] = []
        while not self.done.wait(self.random.uniform(1.5, 3.5)):
            if not order:  # every fault once, in a random order, then again
                order = sorted(actions)
                self.random.shuffle(order)
            name = order.pop()
            self.faults.append(name)
            actions[name]()


def test_the_gateway_keeps_every_promise_through_crashes_restarts_and_outages(cluster: Cluster):
    api_key = provision(cluster)
    sender = Sender(cluster, api_key)
    chaos = Chaos(cluster, seed=random.randrange(1 << 30))
    plan = [(kind, n) for kind, count in TRIGGERS.items() for n in range(count)]
    random.shuffle(plan)
    chaos_thread = threading.Thread(target=chaos.run, daemon=True)
    chaos_thread.start()
    with ThreadPoolExecutor(8) as pool:
        for kind, n in plan:
            pool.submit(getattr(sender, kind), n)
            time.sleep(random.uniform(0.2, 1.2))
    time.sleep(5)  # a little more chaos after the last trigger
    chaos.done.set()
    chaos_thread.join()
    for name in ("web", "worker", "reporter", "scheduler"):
        if cluster.processes[name].poll() is not None:
            cluster.restart(name)
    cluster.wait_healthy()

    store = Store(cluster.pg.url)
    states = wait_settled(store, len(sender.accepted))
    time.sleep(8)  # the reporter's last renders and the scheduler's reaps
    with store.reader() as session:
        runs = session.scalar(select(func.count()).select_from(RunRow))
    slack_posts = {t: slack_finals(cluster, ts) for t, ts in sender.slack_threads.items() if t in sender.accepted}
    linear_posts = {t: linear_finals(cluster, s) for t, s in sender.linear_sessions.items() if t in sender.accepted}
    by_origin = states_by_origin(store)
    mismatched = [
        t
        for t, posts in slack_posts.items()
        if len(posts) == 1
        and posts[0].startswith("Done")
        != (next(s for k, s in by_origin.items() if k and k.endswith(sender.slack_threads[t])) == RunState.SUCCEEDED)
    ] + [
        t
        for t, posts in linear_posts.items()
        if len(posts) == 1
        and (posts[0]["type"] == "response") != (by_origin[f"linear:session:{sender.linear_sessions[t]}"] in OK_STATES)
    ]
    twice = sorted(run_id for run_id, n in cluster.counter.starts.items() if n > 1)
    containers = containers_of(docker.from_env(), gateway=cluster.gateway_id)
    work = cluster.root / "work"
    workspaces = [p.name for p in work.iterdir()] if work.is_dir() else []
    figures = {
        "triggers": len(plan),
        "accepted": len(sender.accepted),
        "runs": runs,
        "runs_not_final": sum(1 for s in states.values() if s not in TERMINAL_STATES),
        "states": {s.value: list(states.values()).count(s) for s in set(states.values())},
        "slack_threads_without_one_final_post": sum(1 for p in slack_posts.values() if len(p) != 1),
        "linear_sessions_without_one_final_activity": sum(1 for p in linear_posts.values() if len(p) != 1),
        "closing_posts_not_matching_the_state": len(mismatched),
        "agents_started_twice": len(twice),
        "containers_left": len(containers),
        "workspaces_left": len(workspaces),
        "faults": {name: chaos.faults.count(name) for name in sorted(set(chaos.faults))},
    }
    print(json.dumps(figures))
    store.dispose()

    assert figures["accepted"] == figures["triggers"], "a trigger was never accepted despite retries"
    assert runs == len(sender.accepted), figures
    assert figures["runs_not_final"] == 0, figures
    assert figures["slack_threads_without_one_final_post"] == 0, {t: p for t, p in slack_posts.items() if len(p) != 1}
    assert figures["linear_sessions_without_one_final_activity"] == 0, figures
    assert mismatched == [], mismatched
    assert twice == [], twice
    assert containers == [] and workspaces == [], (containers, workspaces)
