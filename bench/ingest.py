"""What the webhook-ingest benches share: a real ``oz-gateway serve`` and a bare aiohttp handler,
a fake service in a process of its own, open- and closed-loop load, and counting the runs made.

A bench supplies its ``Deliveries``: ``next(n, retry_every)`` returns the raw body and headers
of delivery ``n`` (every ``retry_every``-th one repeats the previous delivery, as the service's
retries do) and ``unique`` holds the distinct events sent.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiohttp
import redis

from bench.api import REDIS_URL, ROOT, free_port

BARE_APP = """
import sys
from aiohttp import web
async def handle(request):
    await request.read()
    return web.json_response({"ok": True})
app = web.Application()
app.router.add_post(sys.argv[2], handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""
FAKE = """
import importlib, sys, time
sys.path.insert(0, sys.argv[1])
fake = getattr(importlib.import_module(sys.argv[2]), sys.argv[3])().start()
print(getattr(fake, sys.argv[4]), flush=True)
while True:
    time.sleep(3600)
"""


class Deliveries(Protocol):
    unique: set[str]

    def next(self, n: int, retry_every: int) -> tuple[str | bytes, dict[str, str]]: ...


def start_fake(module: str, cls: str, url_attribute: str) -> tuple[subprocess.Popen, str]:
    """A fake service in a process of its own, so it neither slows the load nor is slowed by it."""
    process = subprocess.Popen(
        [sys.executable, "-c", FAKE, str(ROOT), module, cls, url_attribute], stdout=subprocess.PIPE, text=True
    )
    return process, process.stdout.readline().strip()


def summary(latencies: list[float], elapsed: float, errors: int) -> dict:
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000,
        "errors": errors,
    }


async def paced(url: str, deliveries: Deliveries, rate: float, seconds: float, start: int = 0) -> dict:
    """Open loop: delivery ``i`` leaves at ``i / rate`` whether or not earlier ones were answered;
    a quarter of them repeat the previous delivery."""
    latencies: list[float] = []
    errors = 0
    total = int(rate * seconds)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one(i: int, at: float) -> None:
            nonlocal errors
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            raw, headers = deliveries.next(start + i, retry_every=4)
            sent = time.perf_counter()
            async with session.post(url, data=raw, headers=headers) as response:
                await response.read()
                errors += response.status != 200
            latencies.append(time.perf_counter() - sent)

        began = time.perf_counter()
        await asyncio.gather(*(one(i, began + i / rate) for i in range(total)))
        elapsed = time.perf_counter() - began
    return summary(latencies, elapsed, errors)


async def saturated(url: str, deliveries: Deliveries, requests: int, concurrency: int, start: int) -> dict:
    """Closed loop: ``concurrency`` clients each send the next unique delivery when one returns."""
    latencies: list[float] = []
    errors = 0
    numbers = iter(range(start, start + requests))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def client() -> None:
            nonlocal errors
            for n in numbers:
                raw, headers = deliveries.next(n, retry_every=0)
                sent = time.perf_counter()
                async with session.post(url, data=raw, headers=headers) as response:
                    await response.read()
                    errors += response.status != 200
                latencies.append(time.perf_counter() - sent)

        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return summary(latencies, elapsed, errors)


async def wait_ready(url: str) -> None:
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.post(url, data="{}") as response:
                    await response.read()
                    return
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} never answered")


def cli(env: dict, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "cli", *args], env=env, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def provision(env: dict, provider: str) -> None:
    """A person (ada@acme.dev), an environment, and the ``provider`` integration using it."""
    cli(env, "account", "create", "--email", "ada@acme.dev", "--team", "acme")
    who = ("--email", "ada@acme.dev")
    env_id = json.loads(cli(env, "--output-format", "json", "environment", "create", *who, "-n", "b", "-d", "x"))
    cli(env, "integration", "create", provider, *who, "--environment", env_id["uid"])


@dataclass
class Gateway:
    url: str
    env: dict[str, str]
    database: Path

    def runs(self) -> int:
        with sqlite3.connect(self.database) as conn:
            return conn.execute("select count(*) from runs").fetchone()[0]

    async def settle(self, expected: int, timeout: float = 180) -> int:
        """Wait for the work after the acks (runs are created in the background) to finish."""
        deadline = time.monotonic() + timeout
        last, stable = -1, 0
        while time.monotonic() < deadline:
            now = self.runs()
            stable = stable + 1 if now == last else 0
            if now >= expected and stable >= 4:
                return now
            if now != expected and stable >= 20:  # nothing moved for 10 s
                return now
            last = now
            await asyncio.sleep(0.5)
        return self.runs()


def gateway_env(prefix: str, **settings: str) -> tuple[dict[str, str], Path]:
    """The environment of a bench gateway: its own SQLite file and queue name, quiet logs."""
    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OZGW_")}
    env.update(
        OZGW_DATA_DIR=str(data_dir),
        OZGW_DATABASE_URL=f"sqlite:///{data_dir / 'bench.db'}",
        OZGW_REDIS_URL=REDIS_URL,
        OZGW_QUEUE_NAME=f"oz-bench-{uuid.uuid4().hex[:8]}",
        OZGW_LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
        **settings,
    )
    return env, data_dir / "bench.db"


@asynccontextmanager
async def serving(env: dict[str, str], database: Path, path: str) -> AsyncIterator[Gateway]:
    """``oz-gateway serve`` with ``env``; afterwards the process stops and its queue is deleted."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--port", str(port)], env=env, cwd=ROOT)
    try:
        url = f"http://127.0.0.1:{port}{path}"
        await wait_ready(url)
        yield Gateway(url, env, database)
    finally:
        server.terminate()
        server.wait(30)
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"*{env['OZGW_QUEUE_NAME']}*"):
            client.delete(key)


@asynccontextmanager
async def bare(path: str) -> AsyncIterator[str]:
    """The baseline: an aiohttp handler that reads the body and answers 200, nothing else."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", BARE_APP, str(port), path])
    try:
        url = f"http://127.0.0.1:{port}{path}"
        await wait_ready(url)
        yield url
    finally:
        server.terminate()
        server.wait(30)


def show(label: str, figures: dict) -> None:
    print(
        f"{label:<18} {figures['rps']:8.1f} req/s   p50 {figures['p50_ms']:7.2f} ms   "
        f"p99 {figures['p99_ms']:7.2f} ms   errors {figures['errors']}"
    )
