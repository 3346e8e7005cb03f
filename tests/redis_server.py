"""A private, real ``redis-server`` on a free loopback port, which a test may stop and restart."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import redis

REDIS_URL = os.environ.get("OZGW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
"""The shared Redis the suite uses (each test takes a queue name of its own)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        """The local address it listens on (the multi-host tests give their service address)."""
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", self.host, "--save", "", "--appendonly", "no"]
            # Only its own address: a service address on this machine's loopback interface is not
            # "loopback" to Redis, which otherwise refuses the simulated hosts.
            + ([] if self.host == "127.0.0.1" else ["--protected-mode", "no"]),
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis(host=self.host, port=self.port).ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop_hard(self) -> None:
        """``kill -9``: no goodbye to its clients (and nothing kept: it persists nothing)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None
