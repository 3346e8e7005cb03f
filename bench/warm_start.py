"""Warm starts: enqueue → agent start for an environment whose setup is real, offline work
(a virtualenv and ``pip install`` of sympy, boto3 and pandas from wheels vendored in the
repo), cold (no snapshot: clone, setup, snapshot) against warm (from the environment's
snapshot), next to a bare ``docker run`` of the snapshot's image measured in the same run.
The last line is JSON: ``{cold_s, warm_s, bare_s, warm_ratio}`` (``warm_ratio``: warm over bare).

Real parts throughout: SQLite store, Redis + RQ (one ``oz-gateway worker`` process), the Docker
engine with the agent image (``tests/agent_image.py``, built locally), a local bare git remote
and the fake GitHub on loopback; the container's network is ``none``.  The wheels are
downloaded once into ``bench/.cache/wheels`` (the one step that reaches a package registry).

    .venv/bin/python bench/warm_start.py [--cold 2] [--warm 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import docker
from cryptography.fernet import Fernet
from rq.job import Job, JobStatus

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.agent import wait_done  # noqa: E402
from bench.runner import bare_docker_run  # noqa: E402
from core import environments, runs  # noqa: E402
from core.accounts import create_account  # noqa: E402
from core.github_auth import save_authorization  # noqa: E402
from core.logs import configure_logging  # noqa: E402
from core.models import Principal  # noqa: E402
from core.models.wire import RunAgentRequest  # noqa: E402
from core.queue import RunQueue, connect  # noqa: E402
from core.settings import DEFAULT_AGENT_LIMIT, Settings  # noqa: E402
from core.store import Store  # noqa: E402
from core.vault import Vault  # noqa: E402
from runner.snapshots import Snapshots  # noqa: E402
from tests.agent_image import agent_image  # noqa: E402
from tests.fakes.github import FakeGitHub  # noqa: E402

REDIS_URL = os.environ.get("OZGW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
WHEELS = ROOT / "bench" / ".cache" / "wheels"
PACKAGES = ["sympy", "boto3", "pandas"]
PLATFORM = ["--python-version", "3.11", "--platform", "manylinux2014_x86_64", "--implementation", "cp"]
SETUP = [
    "python3 -m venv /workspace/.venv",
    f"/workspace/.venv/bin/pip install -q --no-index --find-links wheels {' '.join(PACKAGES)}",
]


def wheels() -> Path:
    """The packages' wheels for the image's Python (3.11, x86-64), downloaded once."""
    if not any(WHEELS.glob("sympy-*.whl")):
        WHEELS.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "-d",
                str(WHEELS),
                "--only-binary=:all:",
                *PLATFORM,
                *PACKAGES,
            ],
            check=True,
        )
    return WHEELS


def make_remote(root: Path) -> None:
    """``acme/app``: a README and the vendored wheels, as a bare repo standing in for GitHub."""
    seed = root / "_seed"
    shutil.copytree(wheels(), seed / "wheels")
    (seed / "README.md").write_text("# app\n")

    def git(*args: str, cwd: Path) -> None:
        subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)

    git("init", "-q", "-b", "main", cwd=seed)
    git("add", ".", cwd=seed)
    git("-c", "user.name=Bench", "-c", "user.email=b@example.com", "commit", "-q", "-m", "app", cwd=seed)
    (root / "acme").mkdir()
    git("clone", "-q", "--bare", str(seed), str(root / "acme" / "app.git"), cwd=root)


def start_seconds(store: Store, queue: RunQueue, who: Principal, env_id: str, worker: subprocess.Popen) -> float:
    """One run, enqueue → agent start (the run going INPROGRESS)."""
    created = runs.create(
        store,
        queue,
        who,
        RunAgentRequest(prompt="noop", config={"environment_id": env_id}),
        agent_limit=DEFAULT_AGENT_LIMIT,
    )
    run = wait_done(store, created.run.run_id, timeout=900, alive=lambda: worker.poll() is None)
    if run.state.value != "SUCCEEDED" or run.started_at is None:
        raise RuntimeError(f"run ended {run.state.value}: {run.status_message}")
    idle(queue, run.run_id)
    return (run.started_at - run.created_at).total_seconds()


def idle(queue: RunQueue, run_id: str, timeout: float = 60) -> None:
    """Until the worker has finished the run's job (its container and workspace removed): the
    next run's start is then its own, not the tail of this one's clean-up."""
    deadline = time.monotonic() + timeout
    while Job.fetch(run_id, connection=queue.connection).get_status() != JobStatus.FINISHED:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the job of run {run_id} did not finish")
        time.sleep(0.02)


def main() -> None:
    configure_logging("WARNING")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold", type=int, default=2, help="cold runs (the snapshot cleared before each)")
    parser.add_argument("--warm", type=int, default=5, help="warm runs")
    args = parser.parse_args()

    client = docker.from_env()
    image = agent_image(client)
    data = Path(tempfile.mkdtemp(prefix="ozgw-bench-warm-"))
    remotes = data / "remotes"
    remotes.mkdir()
    make_remote(remotes)
    github = FakeGitHub().start()
    github.add_repo("acme", "app", collaborators={"bench-gh": "write"})
    token = github.add_user("bench-gh")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OZGW_")}
    env.update(
        OZGW_DATABASE_URL=f"sqlite:///{data}/bench.db",
        OZGW_REDIS_URL=REDIS_URL,
        OZGW_QUEUE_NAME=f"oz-bench-{uuid.uuid4().hex[:8]}",
        OZGW_DATA_DIR=str(data / "data"),
        OZGW_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        OZGW_GITHUB_API_URL=github.url,
        OZGW_GITHUB_CLONE_URL=f"file://{remotes}",
        OZGW_PULL_IMAGES="false",
        OZGW_CONTAINER_NETWORK="none",
        OZGW_DEFAULT_HARNESS="command",
        OZGW_COMMAND_HARNESS="/bin/echo started",
        OZGW_COMMAND_HARNESS_FORMAT="text",
        OZGW_CONTAINER_MEMORY="2g",
        OZGW_LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    settings = Settings.model_validate({k[5:].lower(): v for k, v in env.items() if k.startswith("OZGW_")})
    store = Store(settings.effective_database_url)
    store.migrate()
    queue = RunQueue(connect(REDIS_URL), settings.queue_name)
    with store.session() as session:
        account = create_account(session, "bench@example.com", "bench")
        save_authorization(session, Vault.from_settings(settings), account.uid, "bench-gh", token)
        who = Principal(kind="user", uid=account.uid, team_uid=account.team_uid, email=account.email)
        env_id = environments.create_environment(
            session, who, name="app", docker_image=image, repos=["acme/app"], setup_commands=SETUP
        ).uid
    snapshots = Snapshots(settings, client)
    log = open(data / "worker.log", "w")  # noqa: SIM115 - the worker's, for as long as it runs
    worker = subprocess.Popen([sys.executable, "-m", "cli", "worker"], env=env, cwd=ROOT, stdout=log, stderr=log)
    try:
        time.sleep(3)  # the worker up
        print(f"[{os.cpu_count()} cores; setup: {' && '.join(SETUP)}]")
        cold = []
        for n in range(args.cold):
            snapshots.clear(env_id)
            cold.append(start_seconds(store, queue, who, env_id, worker))
            print(f"cold {n + 1}: enqueue→agent start {cold[-1]:.2f} s")
        [snapshot] = snapshots.all()
        print(f"snapshot: {snapshot.bytes / 1024**2:.0f} MiB on disk, image {snapshot.image}")
        warm = []
        for n in range(args.warm):
            warm.append(start_seconds(store, queue, who, env_id, worker))
            print(f"warm {n + 1}: enqueue→agent start {warm[-1]:.2f} s")
        bare = bare_docker_run(client, snapshot.image, args.warm, entrypoint=True)
        print(f"bare docker run of the snapshot image: {bare:.2f} s")
        result = {
            "cold_s": round(statistics.median(cold), 2),
            "warm_s": round(statistics.median(warm), 2),
            "bare_s": round(bare, 2),
        }
        result["warm_ratio"] = round(result["warm_s"] / result["bare_s"], 2)
        print(
            f"cold p50 {result['cold_s']} s, warm p50 {result['warm_s']} s "
            f"({result['cold_s'] / result['warm_s']:.1f}x faster), warm/bare {result['warm_ratio']}"
        )
        print(json.dumps(result))
    except RuntimeError:
        print((data / "worker.log").read_text()[-3000:], file=sys.stderr)
        raise
    finally:
        worker.terminate()
        worker.wait(30)
        snapshots.clear(env_id)
        queue.queue.delete(delete_jobs=True)
        github.stop()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
