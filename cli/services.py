"""The embedded default's own Redis: started by ``up`` when no ``OZGW_REDIS_URL`` is set."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis


class RedisNotInstalled(RuntimeError):
    pass


def start_private_redis(data_dir: Path) -> tuple[subprocess.Popen, str]:
    """A Redis listening only on a unix socket under ``data_dir`` (no TCP port to collide on)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisNotInstalled(
            "redis-server is not installed; install it (apt-get install redis-server) or set OZGW_REDIS_URL"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    socket = (data_dir / "redis.sock").resolve()
    socket.unlink(missing_ok=True)
    process = subprocess.Popen(
        [
            binary,
            "--port",
            "0",
            "--unixsocket",
            str(socket),
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(data_dir.resolve()),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"unix://{socket}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if redis.Redis.from_url(url).ping():
                return process, url
        except redis.RedisError:
            time.sleep(0.05)
    process.terminate()
    raise RuntimeError("the private redis-server did not start within 10 s")
