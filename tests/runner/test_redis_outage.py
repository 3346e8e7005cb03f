"""Nothing accepted is lost: a run created while Redis is down executes once Redis is back."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from oz_agent_sdk import OzAPI
from rq.job import Job, JobStatus

from bots.app import create_app
from core.accounts import create_account
from core.keys import create_key
from core.queue import RunQueue, connect
from core.settings import Settings
from core.store import Store
from core.sweeps import requeue_orphans
from tests.live_server import LiveServer
from tests.redis_server import RedisServer
from tests.runner_support import local_runner_env


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def outage_setup(private_redis: RedisServer, store: Store, database_url: str, tmp_path: Path):
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        redis_url=private_redis.url,
        queue_name="oz-outage",
        secret_key="k",
        orphan_grace_seconds=0,
    )
    queue = RunQueue(connect(private_redis.url), settings.queue_name)
    server = LiveServer(create_app(settings, store=store, queue=queue))
    server.start()
    with store.session() as session:
        _, raw = create_key(session, create_account(session, "ops@example.com", "ops"), "k")
    yield settings, queue, OzAPI(api_key=raw, base_url=server.api_url, max_retries=0)
    server.stop()


def test_sweep_enqueues_only_runs_without_a_live_job(outage_setup, private_redis: RedisServer, store: Store):
    _settings, queue, client = outage_setup
    live = client.agent.run(prompt="enqueued normally").run_id
    private_redis.stop()
    orphan = client.agent.run(prompt="accepted during the outage")
    assert orphan.state == "QUEUED"
    assert orphan.at_capacity is True  # accepted, but not yet queued
    assert client.agent.runs.retrieve(orphan.run_id).state == "QUEUED"  # the store answers alone
    assert requeue_orphans(store, queue, grace=timedelta(0)) == []  # Redis still down: nothing, and no crash

    private_redis.start()  # a fresh Redis: it lost the earlier job too
    assert sorted(requeue_orphans(store, queue, grace=timedelta(0))) == sorted([live, orphan.run_id])
    assert requeue_orphans(store, queue, grace=timedelta(0)) == []  # jobs are live now: no duplicates
    assert sorted(queue.queue.get_job_ids()) == sorted([live, orphan.run_id])


def test_worker_executes_a_run_accepted_while_redis_was_down(
    outage_setup,
    private_redis: RedisServer,
    database_url: str,
    tmp_path: Path,
    test_image: str,
):
    settings, queue, client = outage_setup
    private_redis.stop()
    run_id = client.agent.run(prompt="do the thing").run_id
    private_redis.start()

    env = dict(
        os.environ,
        OZGW_DATABASE_URL=database_url,
        OZGW_REDIS_URL=private_redis.url,
        OZGW_QUEUE_NAME=settings.queue_name,
        OZGW_ORPHAN_GRACE_SECONDS="0",
        OZGW_DATA_DIR=str(tmp_path),
        **local_runner_env(test_image, "noop.sh"),
    )
    result = subprocess.run(
        [sys.executable, "-m", "cli", "worker", "--burst"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr

    job = Job.fetch(run_id, connection=queue.connection)
    assert job.get_status() == JobStatus.FINISHED
    run = client.agent.runs.retrieve(run_id)
    assert run.state != "QUEUED"  # the worker claimed and executed it
    assert run.state == "SUCCEEDED", run.status_message
    assert run.status_message.message.startswith("Nothing needed changing.")
