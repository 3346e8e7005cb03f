"""Scale-out: throughput of short runs on 1, 2 and 3 hosts (``tests/hosts.py``: each a network
namespace with its own Docker engine and worker; web processes and reporters on hosts 1 and 2,
the scheduler on host 1; one PostgreSQL, one Redis).

For each host count a fresh cluster takes ``--runs`` API runs of the chaos agent (it reports
its start over the host's link, works ``--work`` seconds and answers), all submitted at once
through the web processes in turn.  Reported per host count:

- throughput: runs finished per second, from the first submit to the last final state, and its
  ratio to one host's (ideal: the host count);
- latency percentiles from creation to final state, split into waiting plus starting (creation
  → the agent's start) and the agent's own time;
- where the CPU went: seconds of CPU per run for each kind of process (web, worker with its
  work horses, reporter, scheduler, the hosts' Docker engines, PostgreSQL, Redis, and "other":
  the rest of the machine's busy time — runc, shims, the containers, the kernel), and how busy
  the machine's cores were.

The last line is one JSON object.  Needs root (namespaces, engines), as the tests do.

    .venv/bin/python -m bench.scale [--runs 24] [--work 0.5] [--hosts 1 2 3] [--workers 1]

With one worker per host the agents' own time dominates and throughput grows with the hosts;
``--workers 4 --work 0`` finds where this machine's cores run out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import requests
from sqlalchemy import select

from core.models.wire import TERMINAL_STATES
from core.store import Store
from core.store.tables import EnvironmentRow, RunRow
from tests.cluster import provision
from tests.hosts import HostCluster
from tests.images import busybox_image
from tests.support.processes import descendants

TICKS = os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def cpu_seconds(pids: set[int]) -> float:
    """CPU time of ``pids`` and of the children they have reaped (a worker's finished horses)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return total / TICKS


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    fields = [int(f) for f in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / TICKS, sum(fields) / TICKS


def roles(cluster: HostCluster) -> dict[str, set[int]]:
    """Every process of the cluster by kind, with what it runs below it."""
    found: dict[str, set[int]] = defaultdict(set)
    for name, process in cluster.processes.items():
        found[name.split("-")[0]] |= {process.pid} | descendants(process.pid)
    for host in cluster.hosts:
        if host.engine is not None:
            found["engine"] |= {host.engine.pid} | descendants(host.engine.pid)
    postmaster = int((cluster.pg.dir / "postmaster.pid").read_text().split()[0])
    found["postgres"] = {postmaster} | descendants(postmaster)
    if cluster.redis.process is not None:
        found["redis"] = {cluster.redis.process.pid}
    return found


def measure(hosts: int, runs: int, work: float, workers: int, image: str) -> dict:
    root = Path(tempfile.mkdtemp(prefix="ozgw-scale-"))
    cluster = HostCluster(root, image, hosts=hosts, workers_per_host=workers)
    try:
        cluster.start()
        key = provision(cluster, network_mode="host", CHAOS_WORK_SECONDS=str(work))
        store = Store(cluster.pg.url)
        with store.reader() as session:  # the one ``provision`` made
            environment = session.scalar(select(EnvironmentRow.uid).where(EnvironmentRow.name == "chaos"))
        headers = {"Authorization": f"Bearer {key}"}
        body = {"prompt": "short task", "config": {"environment_id": environment}}
        _warm_up(cluster, headers, body, store)

        kinds = roles(cluster)
        cpu_before = {kind: cpu_seconds(pids) for kind, pids in kinds.items()}
        busy_before, total_before = machine_busy()
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            created = list(
                pool.map(
                    lambda _: requests.post(
                        f"{cluster.url}/api/v1/agent/runs", json=body, headers=headers, timeout=30
                    ).json()["run_id"],
                    range(runs),
                )
            )
        while True:
            with store.reader() as session:
                rows = session.execute(
                    select(
                        RunRow.run_id,
                        RunRow.state,
                        RunRow.worker_host,
                        RunRow.created_at,
                        RunRow.started_at,
                        RunRow.finished_at,
                    ).where(RunRow.run_id.in_(created))
                ).all()
            if all(r.state in {s.value for s in TERMINAL_STATES} for r in rows):
                break
            if time.monotonic() - started > 60 + runs * (work + 5):
                raise RuntimeError(f"runs did not finish: {sorted(r.state for r in rows)}")
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        busy_after, total_after = machine_busy()
        kinds = roles(cluster)  # horses come and go; engines' and postgres' children too
        cpu = {kind: cpu_seconds(pids) - cpu_before.get(kind, 0.0) for kind, pids in kinds.items()}
        # What no process above accounts for: runc and the containerd shims (children of init),
        # the containers' own processes, the kernel's work for them (mounts, namespaces).
        cpu["other"] = max(0.0, (machine_busy()[0] - busy_before) - sum(cpu.values()))
        store.dispose()
    finally:
        cluster.stop()

    total = [(r.finished_at - r.created_at).total_seconds() for r in rows]
    waiting = [(r.started_at - r.created_at).total_seconds() for r in rows if r.started_at]
    agent = [(r.finished_at - r.started_at).total_seconds() for r in rows if r.started_at]
    spread: dict[str, int] = defaultdict(int)
    for r in rows:
        spread[r.worker_host] += 1
    return {
        "hosts": hosts,
        "workers_per_host": workers,
        "runs": runs,
        "succeeded": sum(1 for r in rows if r.state == "SUCCEEDED"),
        "seconds": round(elapsed, 2),
        "runs_per_second": round(runs / elapsed, 3),
        "by_host": dict(sorted(spread.items())),
        "latency_p50_s": round(statistics.median(total), 2),
        "latency_p95_s": round(percentile(total, 95), 2),
        "wait_and_start_p50_s": round(statistics.median(waiting), 2) if waiting else None,
        "agent_p50_s": round(statistics.median(agent), 2) if agent else None,
        "cpu_s_per_run": {kind: round(seconds / runs, 3) for kind, seconds in sorted(cpu.items())},
        "cores_busy": round((busy_after - busy_before) / elapsed, 2),
        "cores": os.cpu_count(),
        "machine_cpu_share": round((busy_after - busy_before) / max(total_after - total_before, 1e-9), 3),
    }


def _warm_up(cluster: HostCluster, headers: dict, body: dict, store: Store) -> None:
    """One run per host first: each engine builds what its first run needs, each process
    connects, so the measured runs start from a running cluster."""
    ids = [
        requests.post(f"{cluster.url}/api/v1/agent/runs", json=body, headers=headers, timeout=30).json()["run_id"]
        for _ in cluster.hosts
    ]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with store.reader() as session:
            states = set(session.scalars(select(RunRow.state).where(RunRow.run_id.in_(ids))))
        if states <= {s.value for s in TERMINAL_STATES}:
            return
        time.sleep(0.2)
    raise RuntimeError("the warm-up runs did not finish")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=24)
    parser.add_argument("--work", type=float, default=0.5, help="seconds each agent works")
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--workers", type=int, default=1, help="worker processes on each host")
    args = parser.parse_args()
    image = busybox_image(docker.from_env())
    results = []
    for hosts in args.hosts:
        result = measure(hosts, args.runs, args.work, args.workers, image)
        results.append(result)
        print(
            f"{hosts} host(s): {result['runs_per_second']} runs/s ({result['succeeded']}/{args.runs} succeeded in "
            f"{result['seconds']} s, {result['by_host']}), latency p50 {result['latency_p50_s']} s "
            f"p95 {result['latency_p95_s']} s (wait+start p50 {result['wait_and_start_p50_s']} s, agent "
            f"{result['agent_p50_s']} s), {result['cores_busy']} of {result['cores']} cores busy; "
            f"CPU s/run {result['cpu_s_per_run']}",
            flush=True,
        )
    base = results[0]["runs_per_second"]
    summary = {
        "bench": "scale",
        "work_seconds": args.work,
        "workers_per_host": args.workers,
        "results": results,
        "speedup": {str(r["hosts"]): round(r["runs_per_second"] / base, 2) for r in results},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
