"""Agent start-up: for each real CLI (Claude Code, Codex, Gemini in the agent image), the time
from enqueueing a run to the CLI's first request to its model API — the agent really started —
p50/p95 over sequential runs, next to ``docker run`` of the same image running ``<cli>
--version``, measured in the same run.  The last line is one JSON object.

Real parts throughout: SQLite store, Redis + an RQ ``oz-gateway worker``, the Docker engine,
the agent image built locally (``tests/agent_image.py``), the real CLIs; only the model APIs
are the scripted fakes of ``tests/fakes/models.py`` on loopback (reached through the egress forwarder).

    .venv/bin/python bench/agent.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import environments, managed_secrets, runs  # noqa: E402
from core.accounts import create_account  # noqa: E402
from core.logs import configure_logging  # noqa: E402
from core.models import Principal  # noqa: E402
from core.models.wire import TERMINAL_STATES, RunAgentRequest  # noqa: E402
from core.queue import RunQueue, connect  # noqa: E402
from core.settings import DEFAULT_AGENT_LIMIT, Settings  # noqa: E402
from core.store import Store  # noqa: E402
from core.vault import Vault  # noqa: E402
from tests.agent_image import agent_image  # noqa: E402
from tests.fakes.models import Script  # noqa: E402
from tests.real_agents import CLIS  # noqa: E402

REDIS_URL = os.environ.get("OZGW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def bare_version(client: docker.DockerClient, image: str, cli: str, rounds: int) -> float:
    """Median seconds of ``docker run --rm --network none IMAGE <cli> --version``."""
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        client.containers.run(image, [cli, "--version"], remove=True, network_mode="none")
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def wait_done(store: Store, run_id: str, timeout: float = 300, alive: Callable[[], bool] = lambda: True):
    """The run once it ended; ``alive`` says whether what executes it still runs (else fail now)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"nothing executes run {run_id} any more")
        with store.reader() as session:
            run = runs.load_run(session, run_id)
        if run.state in TERMINAL_STATES:
            return run
        time.sleep(0.05)
    raise RuntimeError(f"run {run_id} did not finish")


def main() -> None:
    configure_logging("WARNING")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="runs per CLI")
    args = parser.parse_args()

    client = docker.from_env(timeout=600)
    image = agent_image(client)
    data = Path(tempfile.mkdtemp(prefix="ozgw-bench-agent-"))
    settings = Settings(data_dir=data, database_url=f"sqlite:///{data}/bench.db")
    store = Store(settings.effective_database_url)
    store.migrate()
    queue = RunQueue(connect(REDIS_URL), f"oz-bench-{uuid.uuid4().hex[:8]}")
    with store.session() as session:
        account = create_account(session, "bench@example.com", "bench")
    who = Principal(kind="user", uid=account.uid, team_uid=account.team_uid, email=account.email)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OZGW_")}
    env.update(
        OZGW_DATABASE_URL=settings.effective_database_url,
        OZGW_REDIS_URL=REDIS_URL,
        OZGW_QUEUE_NAME=queue.queue.name,
        OZGW_DATA_DIR=str(data),
        OZGW_PULL_IMAGES="false",
        OZGW_CONTAINER_MEMORY="2g",
        OZGW_EGRESS_ALLOW_PRIVATE="true",
        OZGW_LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "cli", "worker"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    results: dict[str, dict] = {}
    print(f"[{os.cpu_count()} cores, one worker, runs one at a time, image {image}]")
    try:
        for name, spec in CLIS.items():
            fake = spec.fake(Script(path="/workspace/README.md", old="x", new="y")).start()
            with store.session() as session:
                managed_secrets.put_secret(
                    session, Vault.from_settings(settings), who, spec.key_secret, fake.api_key, "team"
                )
                env_id = environments.create_environment(
                    session,
                    who,
                    name=name,
                    docker_image=image,
                    network_mode="egress",
                    variables={spec.base_url_variable: fake.url + spec.base_url_suffix},
                ).uid
            starts = []
            for round_ in range(args.rounds + 1):  # the first one warms the worker and the page cache
                before = len(fake.requests)
                request = RunAgentRequest(prompt="Say hi", config={"environment_id": env_id, "harness": {"type": name}})
                run = runs.create(store, queue, who, request, agent_limit=DEFAULT_AGENT_LIMIT).run
                wait_done(store, run.run_id)
                firsts = [r["at"] for r in fake.requests[before:] if fake.is_main(r["body"])]
                if round_ and firsts:
                    starts.append(min(firsts) - run.created_at.timestamp())
            fake.stop()
            bare = bare_version(client, image, name, args.rounds)
            results[name] = {
                "first_model_request_p50_s": round(statistics.median(starts), 3),
                "first_model_request_p95_s": round(percentile(starts, 95), 3),
                "bare_version_s": round(bare, 3),
                "ratio": round(statistics.median(starts) / bare, 2),
                "runs": len(starts),
            }
            r = results[name]
            print(
                f"{name}: enqueue → first model request p50 {r['first_model_request_p50_s']:.3f} s, "
                f"p95 {r['first_model_request_p95_s']:.3f} s over {r['runs']} runs; "
                f"docker run {name} --version {r['bare_version_s']:.3f} s; ratio {r['ratio']}"
            )
        print(json.dumps(results))
    finally:
        worker.terminate()
        worker.wait(30)
        queue.queue.delete(delete_jobs=True)


if __name__ == "__main__":
    main()
