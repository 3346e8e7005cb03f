"""A worker killed with SIGKILL mid-run leaves no run stuck and no container behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import docker
from rq import Worker

from core import runs, sweeps
from core.models import RunState
from core.models.wire import RunAgentRequest
from core.queue import RunQueue
from core.store import Store, utcnow
from runner.context import WorkerContext
from runner.job import run_job
from runner.recovery import reap_containers, reap_workspaces
from runner.sandbox import GATEWAY_LABEL, HOST_LABEL, RUN_LABEL, containers_of
from runner.workspace import HOST_FILE
from tests.runner.test_execution import final, wait_for_state
from tests.runner_support import Person, with_settings, worker_env
from tests.support.people import AGENT_LIMIT
from tests.support.processes import descendants


def test_kill_9_mid_run_ends_the_run_and_removes_the_container(
    ctx: WorkerContext,
    alice: Person,
    store: Store,
    queue: RunQueue,
    database_url: str,
    tmp_path: Path,
    test_image: str,
    docker_client: docker.DockerClient,
):
    env = worker_env(
        database_url, queue.queue.name, tmp_path / "worker", test_image, "sleep.sh", OZGW_HEARTBEAT_SECONDS="0.3"
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "cli", "worker"],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        run_id = runs.create(
            store, queue, alice.principal, RunAgentRequest(prompt="long job"), agent_limit=AGENT_LIMIT
        ).run.run_id
        wait_for_state(store, run_id, RunState.INPROGRESS, timeout=60)
        assert len(containers_of(docker_client, run_id)) == 1
    finally:
        for pid in [worker.pid, *descendants(worker.pid)]:  # worker and work horse, without a goodbye
            os.kill(pid, signal.SIGKILL)
        worker.wait(10)

    assert final(store, run_id).state == RunState.INPROGRESS  # nobody is left to finish it
    time.sleep(ctx.settings.abandoned_after_seconds + 0.5)
    requeued, failed = sweeps.recover_abandoned(
        store, queue, after=timedelta(seconds=ctx.settings.abandoned_after_seconds)
    )
    assert (requeued, failed) == ([], [run_id])
    run = final(store, run_id)
    assert run.state == RunState.ERROR
    assert run.status_message.error_code == "agent_process_failed"
    assert run.status_message.message == (
        "The agent process exited unexpectedly. (the worker executing this run stopped unexpectedly)"
    )
    assert reap_containers(ctx) == [run_id]
    assert containers_of(docker_client, run_id) == []
    # The private checkout the dead worker left on disk is swept too.
    workspace = Path(env["OZGW_DATA_DIR"]).resolve().parent / "worker-work" / run_id
    assert workspace.is_dir()
    assert reap_workspaces(with_settings(ctx, work_dir=workspace.parent)) == [run_id]
    assert not workspace.exists()


def test_a_run_abandoned_before_its_agent_started_is_queued_again(
    ctx: WorkerContext,
    alice: Person,
    store: Store,
    queue: RunQueue,
):
    run_id = runs.create(
        store, queue, alice.principal, RunAgentRequest(prompt="again"), agent_limit=AGENT_LIMIT
    ).run.run_id
    queue.queue.empty()
    with store.session() as session:  # a worker claimed it, then died before the agent started
        runs.set_status(session, run_id, RunState.PENDING)
        runs.set_status(session, run_id, RunState.CLAIMED, heartbeat_at=utcnow() - timedelta(minutes=5))
    fresh = runs.create(
        store, queue, alice.principal, RunAgentRequest(prompt="busy"), agent_limit=AGENT_LIMIT
    ).run.run_id
    with store.session() as session:  # this one's worker is alive
        runs.set_status(session, fresh, RunState.PENDING, heartbeat_at=utcnow())

    requeued, failed = sweeps.recover_abandoned(store, queue, after=timedelta(seconds=60))
    assert (requeued, failed) == ([run_id], [])
    assert final(store, run_id).state == RunState.QUEUED
    assert run_id in queue.queue.get_job_ids()
    assert run_job(ctx, run_id) == "SUCCEEDED"  # and the next worker runs it through


def test_sigterm_to_the_work_horse_still_removes_the_container(
    ctx: WorkerContext,
    alice: Person,
    store: Store,
    queue: RunQueue,
    database_url: str,
    tmp_path: Path,
    test_image: str,
    docker_client: docker.DockerClient,
):
    env = worker_env(database_url, queue.queue.name, tmp_path / "worker", test_image, "sleep.sh")
    worker = subprocess.Popen(
        [sys.executable, "-m", "cli", "worker", "--burst"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        run_id = runs.create(
            store, queue, alice.principal, RunAgentRequest(prompt="long job"), agent_limit=AGENT_LIMIT
        ).run.run_id
        wait_for_state(store, run_id, RunState.INPROGRESS, timeout=60)
        horses = descendants(worker.pid)
        assert horses, "the work horse was not found"
        for pid in horses:
            os.kill(pid, signal.SIGTERM)
        worker.wait(30)
    finally:
        if worker.poll() is None:
            worker.kill()
    run = final(store, run_id)
    assert run.state == RunState.ERROR
    assert "worker shut down" in run.status_message.message
    assert containers_of(docker_client, run_id) == []


def test_a_running_worker_removes_its_hosts_leftovers_between_jobs(
    alice: Person,
    store: Store,
    queue: RunQueue,
    database_url: str,
    tmp_path: Path,
    test_image: str,
    docker_client: docker.DockerClient,
):
    """A crashed work horse's container and workspace go without the worker restarting; a run
    another host executes now is no reason to keep what *this* host made for it; and a live run
    of another worker sharing this engine under another name is left alone."""
    gateway, work = f"sweep-{uuid.uuid4().hex[:8]}", tmp_path / "work"
    env = worker_env(
        database_url,
        queue.queue.name,
        tmp_path / "worker",
        test_image,
        "sleep.sh",
        OZGW_GATEWAY_ID=gateway,
        OZGW_HOST_NAME="this-host",
        OZGW_WORK_DIR=str(work),
        OZGW_SWEEP_INTERVAL_SECONDS="1",
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "cli", "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    leftovers = []
    try:
        deadline = time.monotonic() + 30
        while not Worker.all(queue=queue.queue) and time.monotonic() < deadline:
            time.sleep(0.2)  # up, its start-up sweep done: what follows is left while it runs
        assert Worker.all(queue=queue.queue), "the worker did not start"
        moved, here, theirs = (
            runs.create(store, queue, alice.principal, RunAgentRequest(prompt=p), agent_limit=AGENT_LIMIT).run.run_id
            for p in ("moved on", "live here", "the other worker's")
        )
        queue.queue.empty()  # all three are executing already, as the store says next
        executing = {moved: "other-host", here: "this-host", theirs: "other-name"}
        with store.session() as session:
            for run_id, host in executing.items():
                runs.set_status(session, run_id, RunState.PENDING)
                runs.set_status(session, run_id, RunState.CLAIMED, heartbeat_at=utcnow(), worker_host=host)
        made_by = {moved: "this-host", here: "this-host", theirs: "other-name"}
        for run_id, host in made_by.items():
            labels = {RUN_LABEL: run_id, GATEWAY_LABEL: gateway, HOST_LABEL: host}
            leftovers.append(docker_client.containers.create(test_image, ["sleep", "600"], labels=labels))
            (work / run_id).mkdir(parents=True)
            (work / run_id / HOST_FILE).write_text(host)

        deadline = time.monotonic() + 30
        while (containers_of(docker_client, moved) or (work / moved).exists()) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert containers_of(docker_client, moved) == [] and not (work / moved).exists()
        for kept in (here, theirs):
            assert len(containers_of(docker_client, kept)) == 1 and (work / kept).is_dir()
        assert worker.poll() is None  # the same worker, not a restart
    finally:
        worker.terminate()
        worker.wait(30)
        for container in leftovers:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
