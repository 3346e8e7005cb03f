"""Run-creation throughput and latency of ``POST /api/v1/agent/runs`` at concurrency 32.

Measures the real ``oz-gateway serve`` process on SQLite and on PostgreSQL (each with Redis
for the queue), and a bare aiohttp handler in the same run as the baseline; prints the
figures, and as its last line one JSON object with the ratios.

    .venv/bin/python bench/api.py [--requests 2000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from core.logs import configure_logging

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get("OZGW_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("OZGW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BARE_APP = """
import sys
from aiohttp import web
async def handle(request):
    body = await request.json()
    return web.json_response({"run_id": "x", "task_id": "x", "state": "QUEUED", "echo": len(body)})
app = web.Application()
app.router.add_post("/api/v1/agent/runs", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def wait_ready(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.post(url, json={}) as response:
                    await response.read()
                    return
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} never answered")


async def load(url: str, key: str, requests: int, concurrency: int) -> dict:
    """Closed-loop load: ``concurrency`` clients each send the next request when one returns."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(requests))
    headers = {"Authorization": f"Bearer {key}"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def client() -> None:
            nonlocal errors
            for i in counter:
                body = {"prompt": f"bench task {i}", "config": {"name": "bench"}, "metadata": {"n": str(i)}}
                start = time.perf_counter()
                async with session.post(url, json=body) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - start)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": requests / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "errors": errors,
    }


def provision(database_url: str, data_dir: Path, env: dict) -> str:
    """Create the schema, an account and a key with the CLI, as an operator would."""
    subprocess.run(
        [sys.executable, "-m", "cli", "account", "create", "--email", "bench@example.com"],
        env=env,
        check=True,
        capture_output=True,
    )
    result = subprocess.run(
        [sys.executable, "-m", "cli", "key", "create", "--email", "bench@example.com", "--name", "bench"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


async def measure_gateway(database_url: str, args: argparse.Namespace) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix="ozgw-bench-"))
    port = free_port()
    queue_name = f"oz-bench-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OZGW_")}
    env.update(
        OZGW_DATA_DIR=str(data_dir),
        OZGW_DATABASE_URL=database_url,
        OZGW_REDIS_URL=REDIS_URL,
        OZGW_QUEUE_NAME=queue_name,
        OZGW_LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    key = provision(database_url, data_dir, env)
    server = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--port", str(port)], env=env, cwd=ROOT)
    try:
        url = f"http://127.0.0.1:{port}/api/v1/agent/runs"
        await wait_ready(url)
        await load(url, key, min(200, args.requests), args.concurrency)  # warm-up
        return await load(url, key, args.requests, args.concurrency)
    finally:
        server.terminate()
        server.wait(30)
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        for job_key in client.scan_iter(f"rq:queue:{queue_name}*"):
            client.delete(job_key)


async def measure_bare(args: argparse.Namespace) -> dict:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", BARE_APP, str(port)])
    try:
        url = f"http://127.0.0.1:{port}/api/v1/agent/runs"
        await wait_ready(url)
        await load(url, "none", min(200, args.requests), args.concurrency)
        return await load(url, "none", args.requests, args.concurrency)
    finally:
        server.terminate()
        server.wait(30)


def fresh_pg_database() -> tuple[str, str]:
    name = f"ozgw_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"


def drop_pg_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def show(label: str, figures: dict) -> None:
    print(
        f"{label:<10} {figures['rps']:8.1f} req/s   p50 {figures['p50_ms']:7.2f} ms   "
        f"p99 {figures['p99_ms']:7.2f} ms   errors {figures['errors']}"
    )


async def main() -> None:
    configure_logging("WARNING")
    configure_logging("WARNING")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    print(
        f"POST /api/v1/agent/runs, {args.requests} requests, concurrency {args.concurrency}, "
        f"{os.cpu_count()} cores (client and server share them)"
    )
    bare = await measure_bare(args)
    show("bare", bare)
    sqlite = await measure_gateway(f"sqlite:///{tempfile.mkdtemp(prefix='ozgw-bench-')}/bench.db", args)
    show("sqlite", sqlite)
    pg_name, pg_url = fresh_pg_database()
    try:
        postgres = await measure_gateway(pg_url, args)
    finally:
        drop_pg_database(pg_name)
    show("postgres", postgres)
    print(
        json.dumps(
            {
                "sqlite_rps": round(sqlite["rps"], 1),
                "sqlite_p99_ms": round(sqlite["p99_ms"], 2),
                "postgres_rps": round(postgres["rps"], 1),
                "postgres_p99_ms": round(postgres["p99_ms"], 2),
                "bare_rps": round(bare["rps"], 1),
                "ratio_sqlite": round(sqlite["rps"] / bare["rps"], 4),
                "ratio_postgres": round(postgres["rps"] / bare["rps"], 4),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
