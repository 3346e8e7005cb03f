"""Soak: steady mixed load through every process of a whole gateway (``tests/cluster.py``:
web, worker, reporter, scheduler on their own PostgreSQL and Redis, fake Slack and Linear) for
a long while, sampling each process's resident memory and open file descriptors.

Load: Slack mentions, Linear sessions and API creates in turn at ``--rate`` per second, each a
real run of the scripted agent, and a client listing runs every second.  Growth is the
least-squares slope of the samples after the first fifth (warm-up), per hour; anything that
grows without bound is a leak.  Last line: JSON.

    python -m bench.soak [--minutes 20] [--rate 0.3]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import docker
import requests
from sqlalchemy import func, select

from core.store import Store
from core.store.tables import RunRow
from tests.cluster import PROCESSES, Cluster, Sender, provision
from tests.images import busybox_image


def sample(pid: int) -> tuple[float, int] | None:
    """(resident MB, open file descriptors) of a live process."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        return rss_kb / 1024, len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, StopIteration):
        return None


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per hour."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    return 0.0 if var == 0 else sum((t - mean_t) * (v - mean_v) for t, v in points) / var * 3600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=0.3, help="triggers per second")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    args = parser.parse_args()

    image = busybox_image(docker.from_env())
    cluster = Cluster(Path(tempfile.mkdtemp(prefix="ozgw-soak-")), image)
    cluster.start()
    samples: dict[str, list[tuple[float, float, int]]] = {name: [] for name in PROCESSES}
    stop = threading.Event()
    try:
        key = provision(cluster)
        sender = Sender(cluster, key)
        kinds = itertools.cycle(["slack", "linear", "api"])

        def load() -> None:
            for n in itertools.count():
                if stop.wait(1 / args.rate):
                    return
                threading.Thread(target=getattr(sender, next(kinds)), args=(n,), daemon=True).start()

        def reader() -> None:
            headers = {"Authorization": f"Bearer {key}"}
            while not stop.wait(1.0):
                with contextlib.suppress(requests.RequestException):
                    requests.get(f"{cluster.url}/api/v1/agent/runs?limit=20", headers=headers, timeout=10)

        threads = [threading.Thread(target=load, daemon=True), threading.Thread(target=reader, daemon=True)]
        for thread in threads:
            thread.start()
        started = time.monotonic()
        print(f"[soak: {args.minutes} min, {args.rate}/s mixed triggers, sampling every {args.every} s]", flush=True)
        while (elapsed := time.monotonic() - started) < args.minutes * 60:
            for name in PROCESSES:
                got = sample(cluster.processes[name].pid)
                if got is not None:
                    samples[name].append((elapsed, *got))
            time.sleep(args.every)
        stop.set()
        time.sleep(5)
        store = Store(cluster.pg.url)
        with store.reader() as session:
            runs = session.scalar(select(func.count()).select_from(RunRow))
        store.dispose()
        figures: dict[str, object] = {
            "minutes": args.minutes,
            "triggers_accepted": len(sender.accepted),
            "runs": runs,
            "processes": {},
        }
        for name, points in samples.items():
            warm = points[len(points) // 5 :]
            figures["processes"][name] = {
                "rss_mb_start": round(warm[0][1], 1) if warm else None,
                "rss_mb_end": round(points[-1][1], 1) if points else None,
                "rss_mb_per_hour": round(slope_per_hour([(t, r) for t, r, _ in warm]), 2),
                "fds_start": warm[0][2] if warm else None,
                "fds_end": points[-1][2] if points else None,
                "fds_per_hour": round(slope_per_hour([(t, f) for t, _, f in warm]), 2),
            }
        for name, f in figures["processes"].items():
            print(
                f"{name:<10} RSS {f['rss_mb_start']} → {f['rss_mb_end']} MB ({f['rss_mb_per_hour']:+} MB/h)   "
                f"fds {f['fds_start']} → {f['fds_end']} ({f['fds_per_hour']:+}/h)"
            )
        print(json.dumps(figures))
    finally:
        stop.set()
        cluster.stop()


if __name__ == "__main__":
    main()
