"""The gateway as more than one host (``tests/hosts.py``): three hosts with a Docker engine and
a worker each, two web processes and two reporters among them, one Redis, one PostgreSQL.

What a team that adds machines counts on: runs from every front door spread over the hosts and
each executed by exactly one; a cancel reaches whichever host runs the run; a host that dies
mid-run has its runs ended by the sweep on another host (not silently re-run), and when it
comes back it — and only it — removes what it left behind; the API names the host of a run.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import docker
import pytest
import requests

from core import environments
from core.accounts import account_by_email
from core.models import RunState
from core.models.wire import TERMINAL_STATES
from core.store import Store
from runner.sandbox import containers_of
from tests.cluster import (
    Sender,
    chaos_environment,
    linear_finals,
    provision,
    run_states,
    slack_finals,
    wait_settled,
)
from tests.hosts import HostCluster, SimulatedHost

pytestmark = pytest.mark.timeout(600)
SLOW_SECONDS = 90
"""How long the slow environment's agent works: long enough to be caught mid-run."""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, test_image: str) -> Iterator[HostCluster]:
    cluster = HostCluster(tmp_path_factory.mktemp("hosts"), test_image)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def store(cluster: HostCluster) -> Iterator[Store]:
    store = Store(cluster.pg.url)
    yield store
    store.dispose()


@pytest.fixture(scope="module")
def api_key(cluster: HostCluster) -> str:
    return provision(cluster, network_mode="host")


@pytest.fixture(scope="module")
def environment(store: Store, api_key: str) -> str:
    """The environment ``provision`` made (its integrations' too): the chaos agent, quick."""
    with store.reader() as session:
        team = account_by_email(session, "ada@acme.dev").team_uid
        return next(e.uid for e in environments.list_environments(session, team) if e.name == "chaos")


@pytest.fixture(scope="module")
def slow_environment(cluster: HostCluster, store: Store, api_key: str) -> str:
    with store.session() as session:
        return chaos_environment(session, cluster, "slow", "host", CHAOS_WORK_SECONDS=str(SLOW_SECONDS))


@pytest.fixture(scope="module")
def gated_environment(cluster: HostCluster, store: Store, api_key: str) -> str:
    """Its setup waits at the counter's gate: runs held on their hosts before their agents start."""
    gate = 'until wget -q -O /dev/null "http://$CHAOS_COUNTER_HOST:$CHAOS_COUNTER_PORT/gate"; do sleep 0.2; done'
    with store.session() as session:
        return chaos_environment(session, cluster, "gated", "host", setup=[gate])


@pytest.fixture(autouse=True)
def isolated(cluster: HostCluster, store: Store, api_key: str) -> Iterator[None]:
    """What a test leaves behind, failing or not — a host down, runs still going, the gate shut —
    is undone before the next one."""
    yield
    cluster.counter.gate.set()
    for host in cluster.hosts:
        if not host.up:
            cluster.boot(host)
    going = [run_id for run_id, state in run_states(store).items() if state not in TERMINAL_STATES]
    for run_id in going:
        api(cluster, api_key, "POST", f"/agent/runs/{run_id}/cancel")
    wait_for(cluster, api_key, going, {s.value for s in TERMINAL_STATES}, timeout=60)


def api(cluster: HostCluster, api_key: str, method: str, path: str, **kwargs: object) -> requests.Response:
    """One call through the load balancer (the next web process)."""
    headers = {"Authorization": f"Bearer {api_key}"}
    return requests.request(method, f"{cluster.url}/api/v1{path}", headers=headers, timeout=15, **kwargs)


def create_runs(cluster: HostCluster, api_key: str, count: int, environment: str) -> list[str]:
    run_ids = []
    for n in range(count):
        body = {"prompt": f"task {n}", "config": {"environment_id": environment}}
        response = api(cluster, api_key, "POST", "/agent/runs", json=body)
        assert response.status_code == 200, response.text
        run_ids.append(response.json()["run_id"])
    return run_ids


def run_item(cluster: HostCluster, api_key: str, run_id: str) -> dict:
    response = api(cluster, api_key, "GET", f"/agent/runs/{run_id}")
    assert response.status_code == 200, response.text
    return response.json()


def wait_for(cluster: HostCluster, api_key: str, run_ids: list[str], states: set[str], timeout: float) -> dict:
    """Each run's item once every one is in one of ``states``."""
    deadline = time.monotonic() + timeout
    while True:
        items = {run_id: run_item(cluster, api_key, run_id) for run_id in run_ids}
        if all(item["state"] in states for item in items.values()):
            return items
        if time.monotonic() > deadline:
            raise AssertionError({run_id: (i["state"], i.get("worker_host")) for run_id, i in items.items()})
        time.sleep(0.5)


def containers_on(host: SimulatedHost, run_id: str) -> list:
    return containers_of(host.client(), run_id)


def test_runs_from_every_front_door_spread_over_the_hosts_and_each_runs_once(
    cluster: HostCluster, store: Store, api_key: str, environment: str
):
    before = set(run_states(store))
    sender = Sender(cluster, api_key, environment)
    plan = [(kind, n) for n in range(6) for kind in ("slack", "linear", "api", "api")]
    with ThreadPoolExecutor(8) as pool:
        for kind, n in plan:
            pool.submit(getattr(sender, kind), 1000 + n if kind == "api" else n)
    assert len(sender.accepted) == len(plan)

    settled = wait_settled(store, len(before) + len(plan))
    states = {r: s for r, s in settled.items() if r not in before}
    assert len(states) == len(plan), "a trigger made no run, or more than one"
    assert set(states.values()) == {RunState.SUCCEEDED}, states

    hosts = {run_id: run_item(cluster, api_key, run_id)["worker_host"] for run_id in states}
    assert set(hosts.values()) == {"host-1", "host-2", "host-3"}, hosts
    assert {run_id: cluster.counter.starts[run_id] for run_id in states} == dict.fromkeys(states, 1)
    time.sleep(3)  # the reporters' last renders
    for trigger, ts in sender.slack_threads.items():
        posts = slack_finals(cluster, ts)
        assert len(posts) == 1 and posts[0].startswith("Done"), (trigger, posts)
    for trigger, session in sender.linear_sessions.items():
        assert [a["type"] for a in linear_finals(cluster, session)] == ["response"], trigger
    # Three engines of their own (none is this machine's), each left with none of the runs.
    engines = {host.client().info()["DockerRootDir"] for host in cluster.hosts}
    assert len(engines) == 3 and docker.from_env().info()["DockerRootDir"] not in engines
    for host in cluster.hosts:
        assert containers_of(host.client(), gateway=cluster.gateway_id) == [], host.name


def test_a_cancel_reaches_whichever_host_runs_the_run(cluster: HostCluster, api_key: str, slow_environment: str):
    run_ids = create_runs(cluster, api_key, 3, slow_environment)
    items = wait_for(cluster, api_key, run_ids, {"INPROGRESS"}, timeout=60)
    # Three workers, one run each at a time: one run on every host.
    assert sorted(i["worker_host"] for i in items.values()) == ["host-1", "host-2", "host-3"]
    for run_id, item in items.items():
        assert len(containers_on(cluster.host(item["worker_host"]), run_id)) == 1

    for run_id in run_ids:  # through either web process, whichever host executes it
        assert api(cluster, api_key, "POST", f"/agent/runs/{run_id}/cancel").status_code == 200
    wait_for(cluster, api_key, run_ids, {"CANCELLED"}, timeout=30)
    for run_id, item in items.items():
        host = cluster.host(item["worker_host"])
        deadline = time.monotonic() + 20
        while containers_on(host, run_id) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert containers_on(host, run_id) == [], f"{host.name} kept the cancelled run's container"


def test_a_host_that_dies_mid_run_is_swept_and_cleans_up_after_itself_when_it_returns(
    cluster: HostCluster, api_key: str, environment: str, slow_environment: str
):
    run_ids = create_runs(cluster, api_key, 3, slow_environment)
    items = wait_for(cluster, api_key, run_ids, {"INPROGRESS"}, timeout=60)
    on = {item["worker_host"]: run_id for run_id, item in items.items()}
    assert sorted(on) == ["host-1", "host-2", "host-3"]
    dying = cluster.host("host-2")  # a web process, a worker and a reporter go with it
    lost = on["host-2"]
    workspace = dying.work_dir / lost
    assert workspace.is_dir()
    deadline = time.monotonic() + 30
    while cluster.counter.starts[lost] == 0 and time.monotonic() < deadline:
        time.sleep(0.2)  # INPROGRESS comes a moment before the agent's first line
    assert cluster.counter.starts[lost] == 1

    dying.power_off()
    # The scheduler on host-1 notices the silent heartbeat: the run whose agent had started
    # ends in error; it is not run again elsewhere.
    failed = wait_for(cluster, api_key, [lost], {"ERROR", "FAILED"}, timeout=60)[lost]
    assert failed["state"] == "ERROR"
    assert failed["status_message"]["error_code"] == "agent_process_failed"
    assert failed["worker_host"] == "host-2"
    # The other hosts carry on: their runs still work; a host that frees up takes new runs.
    assert run_item(cluster, api_key, on["host-1"])["state"] == "INPROGRESS"
    api(cluster, api_key, "POST", f"/agent/runs/{on['host-3']}/cancel")
    quick = create_runs(cluster, api_key, 1, environment)[0]
    done = wait_for(cluster, api_key, [quick], {s.value for s in TERMINAL_STATES}, timeout=60)[quick]
    assert (done["state"], done["worker_host"]) == ("SUCCEEDED", "host-3")
    # What host-2 left is still there: no other host can (or tries to) remove it.
    assert workspace.is_dir()
    assert any((dying.root / "data" / "containers").iterdir())

    cluster.boot(dying)
    deadline = time.monotonic() + 60
    while (containers_on(dying, lost) or workspace.exists()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert containers_on(dying, lost) == [] and not workspace.exists(), "host-2 did not clean up after itself"
    # Host-1's live run was left alone: by host-2's sweep, and by the scheduler's all along.
    assert run_item(cluster, api_key, on["host-1"])["state"] == "INPROGRESS"
    assert len(containers_on(cluster.host("host-1"), on["host-1"])) == 1
    assert cluster.counter.starts[lost] == 1, "the lost run's agent was started again"

    api(cluster, api_key, "POST", f"/agent/runs/{on['host-1']}/cancel")
    wait_for(cluster, api_key, [on["host-1"], on["host-3"]], {"CANCELLED"}, timeout=30)


def console_session(web: str, api_key: str) -> str:
    """Sign in to the console at ``web`` as a browser does; returns the session cookie's value."""
    form = requests.get(f"{web}/console/sign-in", timeout=15)
    pre = re.search(r'name="pre" value="([^"]+)"', form.text)
    assert pre, form.text[:500]
    signed_in = requests.post(
        f"{web}/console/sign-in",
        data={"api_key": api_key, "pre": pre.group(1), "next": "/console/runs"},
        cookies=form.cookies,
        allow_redirects=False,
        timeout=15,
    )
    assert signed_in.status_code == 303, signed_in.text[:500]
    return signed_in.cookies["oz_console"]


def test_any_web_process_serves_any_run(cluster: HostCluster, api_key: str, environment: str):
    """A run created at one web process is read, listed and followed at the other, and a console
    session opened at one is good at the other, which shows the host that ran the run (their
    only shared state is the store and Redis)."""
    first, second = cluster.webs[:2]
    headers = {"Authorization": f"Bearer {api_key}"}
    body = {"prompt": "seen everywhere", "config": {"environment_id": environment}}
    created = requests.post(f"{first}/api/v1/agent/runs", json=body, headers=headers, timeout=15)
    assert created.status_code == 200, created.text
    run_id = created.json()["run_id"]
    seen = requests.get(f"{second}/api/v1/agent/runs/{run_id}", headers=headers, timeout=15)
    assert seen.status_code == 200 and seen.json()["run_id"] == run_id
    listed = requests.get(f"{second}/api/v1/agent/runs", headers=headers, params={"limit": 50}, timeout=15).json()
    assert run_id in [r["run_id"] for r in listed["runs"]]
    wait_for(cluster, api_key, [run_id], {"SUCCEEDED"}, timeout=60)
    events = requests.get(f"{first}/api/v1/agent/runs/{run_id}/events", headers=headers, timeout=15)
    assert events.status_code == 200 and f"Done with {run_id}." in events.text, events.text[-2000:]
    host = run_item(cluster, api_key, run_id)["worker_host"]
    cookie = console_session(first, api_key)
    page = requests.get(f"{second}/console/runs/{run_id}", cookies={"oz_console": cookie}, timeout=15)
    assert page.status_code == 200 and f'<dd class="host">{host}</dd>' in page.text, page.text[:1000]


def test_a_run_caught_in_setup_by_a_dying_host_runs_once_elsewhere_and_the_host_still_cleans_up(
    cluster: HostCluster, api_key: str, gated_environment: str
):
    cluster.counter.gate.clear()
    run_ids = create_runs(cluster, api_key, 3, gated_environment)
    items = wait_for(cluster, api_key, run_ids, {"CLAIMED"}, timeout=60)  # each in its setup, held
    on = {item["worker_host"]: run_id for run_id, item in items.items()}
    assert sorted(on) == ["host-1", "host-2", "host-3"]
    dying, caught = cluster.host("host-2"), on["host-2"]
    workspace = dying.work_dir / caught

    dying.power_off()
    # Its agent never started: the sweep puts it back in the queue rather than failing it.
    wait_for(cluster, api_key, [caught], {"QUEUED"}, timeout=60)
    # Host-3 frees up and takes it (host-1 is still held): the run is live again, on host-3.
    api(cluster, api_key, "POST", f"/agent/runs/{on['host-3']}/cancel")
    moved = wait_for(cluster, api_key, [caught], {"CLAIMED"}, timeout=60)[caught]
    assert moved["worker_host"] == "host-3"

    # Host-2 comes back while the run it lost is live elsewhere: what it left of the run is
    # still its own to remove, and host-3's container for the run stays.
    assert workspace.is_dir()
    cluster.boot(dying)
    deadline = time.monotonic() + 60
    while (containers_on(dying, caught) or workspace.exists()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert containers_on(dying, caught) == [] and not workspace.exists(), "host-2 kept what it left of the run"
    assert len(containers_on(cluster.host("host-3"), caught)) == 1

    cluster.counter.gate.set()
    done = wait_for(cluster, api_key, [caught, on["host-1"]], {s.value for s in TERMINAL_STATES}, timeout=90)
    assert {run_id: (i["state"], i["worker_host"]) for run_id, i in done.items()} == {
        caught: ("SUCCEEDED", "host-3"),
        on["host-1"]: ("SUCCEEDED", "host-1"),
    }
    assert cluster.counter.starts[caught] == 1 and cluster.counter.starts[on["host-1"]] == 1
