"""Runner latency: for N = 1, 4 and 8 concurrent runs of a trivial agent, the time from enqueue
to agent start and to SUCCEEDED (p50/p95), next to N bare ``docker run``s of the same image at
the same time, measured in the same run (``ratio``: the runs' median time to SUCCEEDED over
the bare runs' median, at the same concurrency).  The last line is one JSON object for the
largest N.

Real parts throughout: SQLite store, Redis + RQ workers (8 ``oz-gateway worker`` processes),
the Docker engine, the busybox test image built locally, the ``command`` harness.

    .venv/bin/python bench/runner.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import environments, runs  # noqa: E402
from core.accounts import create_account  # noqa: E402
from core.logs import configure_logging  # noqa: E402
from core.models import Principal  # noqa: E402
from core.models.wire import TERMINAL_STATES, RunAgentRequest  # noqa: E402
from core.queue import RunQueue, connect  # noqa: E402
from core.settings import DEFAULT_AGENT_LIMIT  # noqa: E402
from core.store import Store  # noqa: E402
from tests.images import busybox_image  # noqa: E402

REDIS_URL = os.environ.get("OZGW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
WORKERS = 8


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def bare_docker_run(
    client: docker.DockerClient, image: str, rounds: int, concurrency: int = 1, entrypoint: bool = False
) -> float:
    """Median seconds of ``docker run --rm --network none IMAGE true`` (create, start, wait,
    remove), ``concurrency`` of them at once, as the runs it is compared with; ``entrypoint``:
    ``true`` as the entrypoint (an image whose own would not run it)."""
    samples: list[float] = []
    command = {"entrypoint": ["true"]} if entrypoint else {"command": ["true"]}

    def one() -> None:
        started = time.perf_counter()
        client.containers.run(image, remove=True, network_mode="none", **command)
        samples.append(time.perf_counter() - started)

    for _ in range(rounds):
        threads = [threading.Thread(target=one) for _ in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return statistics.median(samples)


def wait_all(store: Store, run_ids: list[str], timeout: float = 300) -> list:
    deadline = time.monotonic() + timeout
    while True:
        with store.reader() as session:
            loaded = [runs.load_run(session, r) for r in run_ids]
        if all(r.state in TERMINAL_STATES for r in loaded):
            return loaded
        if time.monotonic() > deadline:
            raise RuntimeError("runs did not finish in time")
        time.sleep(0.05)


def main() -> None:
    configure_logging("WARNING")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="batches per N")
    args = parser.parse_args()

    client = docker.from_env()
    image = busybox_image(client)
    data = Path(tempfile.mkdtemp(prefix="ozgw-bench-runner-"))
    db_url = f"sqlite:///{data}/bench.db"
    queue_name = f"oz-bench-{uuid.uuid4().hex[:8]}"
    store = Store(db_url)
    store.migrate()
    queue = RunQueue(connect(REDIS_URL), queue_name)
    with store.session() as session:
        account = create_account(session, "bench@example.com", "bench")
        who = Principal(kind="user", uid=account.uid, team_uid=account.team_uid, email=account.email)
        env_id = environments.create_environment(session, who, name="bench", docker_image=image).uid

    env = {k: v for k, v in os.environ.items() if not k.startswith("OZGW_")}
    env.update(
        OZGW_DATABASE_URL=db_url,
        OZGW_REDIS_URL=REDIS_URL,
        OZGW_QUEUE_NAME=queue_name,
        OZGW_DATA_DIR=str(data),
        OZGW_PULL_IMAGES="false",
        OZGW_CONTAINER_NETWORK="none",
        OZGW_DEFAULT_HARNESS="command",
        OZGW_COMMAND_HARNESS="/bin/sh /opt/agents/noop.sh",
        OZGW_COMMAND_HARNESS_FORMAT="text",
        OZGW_CONTAINER_MEMORY="256m",
        OZGW_LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "cli", "worker"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(WORKERS)
    ]
    try:
        time.sleep(3)  # workers up
        warm = runs.create(
            store,
            queue,
            who,
            RunAgentRequest(prompt="warm up", config={"environment_id": env_id}),
            agent_limit=DEFAULT_AGENT_LIMIT,
        )
        wait_all(store, [warm.run.run_id])
        print(f"[{os.cpu_count()} cores, {WORKERS} workers]")
        result = {}
        for n in (1, 4, 8):
            bare = bare_docker_run(client, image, args.rounds, concurrency=n)
            print(f"N={n}: {n} bare docker runs at once (create+start+wait+remove): p50 {bare:.3f} s")
            starts, dones, failed = [], [], 0
            for _ in range(args.rounds):
                batch = [
                    runs.create(
                        store,
                        queue,
                        who,
                        RunAgentRequest(prompt="noop", config={"environment_id": env_id}),
                        agent_limit=DEFAULT_AGENT_LIMIT,
                    ).run.run_id
                    for _ in range(n)
                ]
                for run in wait_all(store, batch):
                    if run.state.value != "SUCCEEDED" or run.started_at is None:
                        failed += 1
                        continue
                    starts.append((run.started_at - run.created_at).total_seconds())
                    dones.append((run.finished_at - run.created_at).total_seconds())
            result = {
                "n": n,
                "start_p50_s": round(statistics.median(starts), 3),
                "start_p95_s": round(percentile(starts, 95), 3),
                "done_p50_s": round(statistics.median(dones), 3),
                "done_p95_s": round(percentile(dones, 95), 3),
                "bare_docker_run_s": round(bare, 3),
                "ratio": round(statistics.median(dones) / bare, 2),
                "start_ratio": round(statistics.median(starts) / bare, 2),
            }
            print(
                f"N={n}: enqueue→agent start p50 {result['start_p50_s']:.3f} s p95 {result['start_p95_s']:.3f} s; "
                f"enqueue→SUCCEEDED p50 {result['done_p50_s']:.3f} s p95 {result['done_p95_s']:.3f} s; "
                f"{len(dones)} runs, {failed} failed; ratio to bare docker run {result['ratio']}"
            )
        print(
            json.dumps(
                {
                    k: result[k]
                    for k in (
                        "n",
                        "start_p50_s",
                        "start_p95_s",
                        "done_p50_s",
                        "bare_docker_run_s",
                        "ratio",
                        "start_ratio",
                    )
                }
            )
        )
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(30)
        queue.queue.delete(delete_jobs=True)


if __name__ == "__main__":
    main()
