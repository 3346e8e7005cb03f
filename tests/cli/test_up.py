"""The README's first command: ``oz-gateway up`` brings up web, worker, scheduler and a Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from oz_agent_sdk import OzAPI

from tests.redis_server import free_port
from tests.runner_support import local_runner_env


def wait_for(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def test_up_serves_the_api_and_executes_runs(tmp_path: Path, test_image: str):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OZGW_")}
    env.update(
        OZGW_DATA_DIR=str(tmp_path / "data"),
        OZGW_ORPHAN_GRACE_SECONDS="0",
        OZGW_SWEEP_INTERVAL_SECONDS="1",
        **local_runner_env(test_image, "noop.sh"),
    )
    port = free_port()
    up = subprocess.Popen(
        [sys.executable, "-m", "cli", "up", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz")
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok", "queue": True}
        assert (tmp_path / "data" / "redis.sock").exists()  # its own Redis, nothing configured
        subprocess.run(
            [sys.executable, "-m", "cli", "account", "create", "--email", "me@example.com"],
            env=env,
            check=True,
            capture_output=True,
        )
        key = subprocess.run(
            [sys.executable, "-m", "cli", "key", "create", "--email", "me@example.com", "--name", "k"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        client = OzAPI(api_key=key, base_url=f"http://127.0.0.1:{port}/api/v1", max_retries=0)
        run_id = client.agent.run(prompt="Summarize the repo", config={"name": "nightly"}).run_id
        deadline = time.monotonic() + 60
        while client.agent.runs.retrieve(run_id).state not in ("SUCCEEDED", "FAILED", "ERROR"):
            assert time.monotonic() < deadline, "the run never finished"
            time.sleep(0.2)
        run = client.agent.runs.retrieve(run_id)
        assert run.state == "SUCCEEDED", run.status_message
        assert run.status_message.message.startswith("Nothing needed changing.")
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(30)
    assert up.returncode == 0
    time.sleep(0.5)
    leftovers = subprocess.run(["pgrep", "-f", f"--unixsocket {tmp_path}"], capture_output=True, text=True)
    assert leftovers.stdout.strip() == "", "up left its Redis running"
