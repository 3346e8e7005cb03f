"""Safe defaults around the runner: a cancel leaves no checkout behind, work directories live
outside the data directory, and host networking must be allowed by the operator."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import docker
import pytest
from click.testing import CliRunner

from cli.main import main as cli
from core import environments, runs
from core.models import RunState
from core.models.wire import RunAgentRequest
from core.queue import RunQueue
from core.settings import Settings
from core.store import Store
from runner.context import WorkerContext
from runner.job import run_job
from runner.sandbox import containers_of
from tests.runner.test_execution import final, wait_for_state
from tests.runner_support import Person, worker_env
from tests.support.people import AGENT_LIMIT


def test_cancelling_a_running_run_through_its_worker_removes_container_and_checkout(
    alice: Person,
    store: Store,
    queue: RunQueue,
    database_url: str,
    tmp_path: Path,
    test_image: str,
    make_env,
    docker_client: docker.DockerClient,
):
    env = worker_env(database_url, queue.queue.name, tmp_path / "worker", test_image, "sleep.sh")
    work = Path(env["OZGW_DATA_DIR"]).resolve().parent / "worker-work"
    worker = subprocess.Popen(
        [sys.executable, "-m", "cli", "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        run_id = runs.create(
            store,
            queue,
            alice.principal,
            RunAgentRequest(prompt="long job", config={"environment_id": make_env()}),
            agent_limit=AGENT_LIMIT,
        ).run.run_id
        wait_for_state(store, run_id, RunState.INPROGRESS, timeout=60)
        assert (work / run_id).is_dir()

        runs.cancel(store, queue, alice.principal, run_id)  # what the API, Slack and Linear call

        deadline = time.monotonic() + 30
        while ((work / run_id).exists() or containers_of(docker_client, run_id)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not (work / run_id).exists(), "the cancelled run's checkout stayed on disk"
        assert containers_of(docker_client, run_id) == []
        assert final(store, run_id).state == RunState.CANCELLED
        assert worker.poll() is None  # the worker itself lives on
    finally:
        worker.terminate()
        worker.wait(30)


def test_work_directories_are_not_inside_the_data_directory(tmp_path: Path):
    settings = Settings(data_dir=tmp_path / "data")
    data, work = settings.data_dir.resolve(), settings.effective_work_dir
    assert data not in work.parents and work != data
    assert work == tmp_path.resolve() / "data-work"


def test_host_networking_needs_the_operators_consent(
    ctx: WorkerContext, alice: Person, store: Store, make_env, tmp_path: Path
):
    from core import environments

    with store.session() as session:
        env = environments.create_environment(
            session, alice.principal, name="host", docker_image=ctx.settings.default_image, network_mode="host"
        )
    run_id = runs.create(
        store,
        None,
        alice.principal,
        RunAgentRequest(prompt="x", config={"environment_id": env.uid}),
        agent_limit=AGENT_LIMIT,
    )
    assert run_job(ctx, run_id.run.run_id) == "FAILED"
    status = final(store, run_id.run.run_id).status_message
    assert status.error_code == "environment_setup_failed"
    assert status.message.startswith("Host networking is disabled on this gateway (")

    result = CliRunner().invoke(
        cli,
        [
            "environment",
            "create",
            "--email",
            "alice@example.com",
            "--name",
            "h",
            "--docker-image",
            "x",
            "--network",
            "host",
        ],
        env={"OZGW_DATABASE_URL": ctx.settings.effective_database_url, "OZGW_DATA_DIR": str(tmp_path / "cli")},
    )
    assert result.exit_code != 0 and "host networking is disabled" in result.output.lower()


@pytest.fixture
def make_env(store: Store, runner_alice: Person, test_image: str):
    from core import environments

    def make() -> str:
        with store.session() as session:
            return environments.create_environment(
                session, runner_alice.principal, name="env", docker_image=test_image
            ).uid

    return make


@pytest.fixture
def alice(runner_alice: Person) -> Person:
    return runner_alice


def test_a_slow_github_never_holds_the_stores_write_lock(
    ctx: WorkerContext, alice: Person, store: Store, github, remotes, make_env, tmp_path: Path
):
    from core.agents import default_agent
    from core.github_orgs import enable_org
    from core.models import Principal

    remotes.create("acme", "api")
    github.add_repo("acme", "api", installation_id=77)
    with store.session() as session:
        agent = default_agent(session, alice.principal.team_uid, AGENT_LIMIT)
        enable_org(session, alice.principal.team_uid, "acme")
        env_id = environments.create_environment(
            session, alice.principal, name="app", docker_image=ctx.settings.default_image, repos=["acme/api"]
        ).uid
    bot = Principal(kind="service_account", uid=agent.uid, team_uid=agent.team_uid)
    run_id = runs.create(
        store, None, bot, RunAgentRequest(prompt="nightly", config={"environment_id": env_id}), agent_limit=AGENT_LIMIT
    ).run.run_id
    github.hold("/installation")  # GitHub takes its time to say which installation holds the repo
    worker = threading.Thread(target=run_job, args=(ctx, run_id))
    worker.start()
    try:
        assert github.arrived.wait(30)
        # Meanwhile the API accepts another run: a write the slow call must not block.
        other = runs.create(store, None, alice.principal, RunAgentRequest(prompt="meanwhile"), agent_limit=AGENT_LIMIT)
        assert other.created and not github.release.is_set()
    finally:
        github.release.set()
        worker.join(60)
    assert final(store, run_id).state == RunState.SUCCEEDED


@pytest.mark.parametrize(("capabilities", "outcome"), [(None, "chown rc=0"), ([], "chown rc=1")])
def test_root_processes_keep_only_the_capabilities_the_operator_grants(
    ctx: WorkerContext, alice: Person, store: Store, make_env, capabilities, outcome: str
):
    from tests.runner_support import with_settings

    changes = {
        "command_harness": "/bin/sh -c 'touch /tmp/f; chown 1:1 /tmp/f 2>/dev/null; echo chown rc=$?'",
        "command_harness_format": "text",
    }
    if capabilities is not None:
        changes["container_capabilities"] = capabilities
    run_id = runs.create(
        store,
        None,
        alice.principal,
        RunAgentRequest(prompt="x", config={"environment_id": make_env()}),
        agent_limit=AGENT_LIMIT,
    ).run.run_id
    assert run_job(with_settings(ctx, **changes), run_id) == "SUCCEEDED"
    assert final(store, run_id).status_message.message == outcome
