"""A peer that accepts the connection and then says nothing — Slack, GitHub, the Docker
engine — fails the call within ``OZGW_OUTBOUND_TIMEOUT_SECONDS`` (the engine's own timeout for
Docker) with an error that names it; it never wedges the reporter or a worker.  (Linear's
client: ``tests/security/test_small_ones.py``.)"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from redis.asyncio import Redis as AsyncRedis

from bots.slack.app import build_reporter
from core import runs
from core.models import Origin, RunSourceType
from core.models.wire import RunAgentRequest
from core.reporting import load_for_report
from core.store import Store
from core.vault import Vault
from runner.context import WorkerContext
from runner.job import run_job
from tests.redis_server import REDIS_URL
from tests.runner.test_execution import final
from tests.runner_support import Person, Remotes, settings_with, with_settings
from tests.support.people import AGENT_LIMIT


@pytest.fixture
def silent() -> Iterator[str]:
    """A TCP server whose kernel completes the handshake and which never reads or answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()


async def test_a_silent_slack_fails_the_reporters_call_instead_of_wedging_it(
    silent: str, settings, store: Store, runner_alice: Person
):
    slack = settings_with(
        settings, slack_bot_token="xoxb-test", slack_api_url=f"{silent}/api/", outbound_timeout_seconds=1
    )
    ref = {"team": "T1", "channel": "C1", "thread_ts": "1.0", "status_ts": "1.1"}
    origin = Origin(source=RunSourceType.SLACK, ref=ref, key="k")
    request = RunAgentRequest(prompt="x")
    run_id = runs.create(
        store, None, runner_alice.principal, request, source=RunSourceType.SLACK, origin=origin, agent_limit=AGENT_LIMIT
    )
    connection = AsyncRedis.from_url(REDIS_URL)
    reporter = build_reporter(slack, store, Vault.from_settings(slack))
    started = time.monotonic()
    with pytest.raises(TimeoutError):  # the client's own timeout (the test's own would come at 60 s)
        await asyncio.wait_for(reporter.report(*load_for_report(store, run_id.run.run_id)), 60)
    await connection.aclose()
    assert time.monotonic() - started < 30


def test_a_silent_github_ends_the_run_saying_so(
    silent: str, ctx: WorkerContext, alice: Person, make_env, start_run, remotes: Remotes, store: Store
):
    remotes.create("acme", "api")
    # Retries off: what is tested here is the timeout (tests/runner/test_platform_retries.py has the retries).
    ctx = with_settings(ctx, github_api_url=silent, outbound_timeout_seconds=1, platform_retries=0)
    run_id = start_run(alice.principal, make_env(repos=["acme/api"]))
    started = time.monotonic()

    assert run_job(ctx, run_id) == "ERROR"

    assert time.monotonic() - started < 30
    status = final(store, run_id).status_message
    assert status.error_code == "resource_unavailable" and status.message.startswith("GitHub did not answer")


def test_a_silent_docker_engine_ends_the_run_saying_so(
    ctx: WorkerContext, alice: Person, make_env, start_run, store: Store, tmp_path: Path
):
    path = tmp_path / "docker.sock"
    engine = socket.socket(socket.AF_UNIX)
    engine.bind(str(path))
    engine.listen(64)
    hung = docker.DockerClient(base_url=f"unix://{path}", version="1.41", timeout=1)
    ctx = dataclasses.replace(with_settings(ctx, platform_retries=0), _docker=hung)  # the timeout, not the retries
    run_id = start_run(alice.principal, make_env())
    started = time.monotonic()

    assert run_job(ctx, run_id) == "ERROR"

    assert time.monotonic() - started < 30
    status = final(store, run_id).status_message
    assert status.error_code == "resource_unavailable" and status.message.startswith("The Docker engine did not answer")
    assert not (ctx.settings.effective_work_dir / run_id).exists()
    engine.close()


@pytest.fixture
def alice(runner_alice: Person) -> Person:
    return runner_alice
