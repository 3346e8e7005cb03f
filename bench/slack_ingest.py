"""Slack ingest: ack latency and throughput of signed ``app_mention`` deliveries to ``/slack/events``.

Drives the real ``oz-gateway serve`` process (bolt app, SQLite store, Redis) at a paced
200 deliveries/s, a quarter of them Slack retries of an earlier event (``X-Slack-Retry-Num``),
while a fake Slack Web API on 127.0.0.1 answers the work the app does after each ack.  The
same paced load goes to a bare aiohttp handler in the same run as the baseline.  Then both
are saturated (closed loop, concurrency 32) for their maximum rate.  Finally it counts the
runs created, which must equal the unique events.  Last line: one JSON object.

    .venv/bin/python bench/slack_ingest.py [--seconds 5] [--rate 200]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
from slack_sdk.signature import SignatureVerifier

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.api import REDIS_URL, ROOT, free_port
from core.logs import configure_logging
from tests.fakes.slack import event_fixture

BARE_APP = """
import sys
from aiohttp import web
async def handle(request):
    await request.read()
    return web.Response(text="")
app = web.Application()
app.router.add_post("/slack/events", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""
TEMPLATE = event_fixture("event.app_mention.thread")
FAKE_SLACK = """
import sys, time
sys.path.insert(0, sys.argv[1])
from tests.fakes.slack import FakeSlack
fake = FakeSlack().start()
print(fake.api_url, flush=True)
while True:
    time.sleep(3600)
"""


def start_fake_slack() -> tuple[subprocess.Popen, str]:
    """The fake Slack in a process of its own, so it neither slows the load nor is slowed by it."""
    process = subprocess.Popen([sys.executable, "-c", FAKE_SLACK, str(ROOT)], stdout=subprocess.PIPE, text=True)
    return process, process.stdout.readline().strip()


class Deliveries:
    """Unique app_mention events (each in a thread of its own) and retries of earlier ones."""

    def __init__(self, secret: str) -> None:
        self.verifier = SignatureVerifier(secret)
        self.sent: list[str] = []
        self.unique: set[str] = set()

    def body(self, n: int) -> str:
        body = copy.deepcopy(TEMPLATE)
        ts = f"{1800000000 + n}.000100"
        body["event_id"] = f"EvBENCH{n:07d}"
        body["event"].update(ts=ts, event_ts=ts, thread_ts=f"{1700000000 + n}.000200")
        return json.dumps(body)

    def next(self, n: int, retry_every: int) -> tuple[str, dict[str, str]]:
        headers = {"Content-Type": "application/json"}
        if retry_every and n % retry_every == retry_every - 1 and self.sent:
            raw = self.sent[-1]  # Slack retrying the previous delivery
            headers |= {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
        else:
            raw = self.body(n)
            self.sent.append(raw)
            self.unique.add(json.loads(raw)["event_id"])
        stamp = str(int(time.time()))
        headers |= {
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": self.verifier.generate_signature(timestamp=stamp, body=raw),
        }
        return raw, headers


def summary(latencies: list[float], elapsed: float, errors: int) -> dict:
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000,
        "errors": errors,
    }


async def paced(url: str, deliveries: Deliveries, rate: float, seconds: float, start: int) -> dict:
    """Open loop: delivery ``i`` leaves at ``i / rate`` whether or not earlier ones were answered."""
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


def provision(env: dict) -> None:
    """An account linked to the fixture's Slack user, an environment and the Slack integration."""
    cli(env, "account", "create", "--email", "ada@acme.dev", "--team", "acme")
    who = ("--email", "ada@acme.dev")
    env_id = json.loads(cli(env, "--output-format", "json", "environment", "create", *who, "-n", "b", "-d", "x"))
    cli(env, "integration", "create", "slack", *who, "--environment", env_id["uid"])
    cli(env, "identity", "link", "slack", TEMPLATE["team_id"], TEMPLATE["event"]["user"], "ada@acme.dev")


def count_runs(database: str) -> int:
    import sqlite3

    with sqlite3.connect(database) as conn:
        return conn.execute("select count(*) from runs").fetchone()[0]


async def settle(database: str, expected: int, timeout: float = 180) -> int:
    """Wait for the work after the acks (runs are created in the background) to finish."""
    deadline = time.monotonic() + timeout
    last, stable = -1, 0
    while time.monotonic() < deadline:
        now = count_runs(database)
        stable = stable + 1 if now == last else 0
        if now >= expected and stable >= 4:
            return now
        if now != expected and stable >= 20:  # nothing moved for 10 s
            return now
        last = now
        await asyncio.sleep(0.5)
    return count_runs(database)


async def measure_gateway(args: argparse.Namespace) -> tuple[dict, dict, int, int]:
    data_dir = Path(tempfile.mkdtemp(prefix="ozgw-bench-slack-"))
    database = data_dir / "bench.db"
    secret = secrets.token_hex(16)
    fake, fake_url = start_fake_slack()
    queue_name = f"oz-bench-{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OZGW_")}
    env.update(
        OZGW_DATA_DIR=str(data_dir),
        OZGW_DATABASE_URL=f"sqlite:///{database}",
        OZGW_REDIS_URL=REDIS_URL,
        OZGW_QUEUE_NAME=queue_name,
        OZGW_LOG_LEVEL="WARNING",
        OZGW_SLACK_SIGNING_SECRET=secret,
        OZGW_SLACK_BOT_TOKEN="xoxb-" + secrets.token_hex(12),
        OZGW_SLACK_API_URL=fake_url,
        PYTHONPATH=str(ROOT),
    )
    provision(env)
    server = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--port", str(port)], env=env, cwd=ROOT)
    deliveries = Deliveries(secret)
    try:
        url = f"http://127.0.0.1:{port}/slack/events"
        await wait_ready(url)
        load = await paced(url, deliveries, args.rate, args.seconds, 0)
        top = await saturated(url, deliveries, args.saturate, 32, 10_000_000)
        created = await settle(str(database), len(deliveries.unique))
        return load, top, len(deliveries.unique), created
    finally:
        server.terminate()
        server.wait(30)
        fake.terminate()
        fake.wait(10)
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"*{queue_name}*"):
            client.delete(key)


async def measure_bare(args: argparse.Namespace) -> tuple[dict, dict]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", BARE_APP, str(port)])
    deliveries = Deliveries(secrets.token_hex(16))
    try:
        url = f"http://127.0.0.1:{port}/slack/events"
        await wait_ready(url)
        load = await paced(url, deliveries, args.rate, args.seconds, 0)
        top = await saturated(url, deliveries, args.saturate, 32, 10_000_000)
        return load, top
    finally:
        server.terminate()
        server.wait(30)


def show(label: str, figures: dict) -> None:
    print(
        f"{label:<18} {figures['rps']:8.1f} req/s   p50 {figures['p50_ms']:7.2f} ms   "
        f"p99 {figures['p99_ms']:7.2f} ms   errors {figures['errors']}"
    )


async def main() -> None:
    configure_logging("WARNING")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--saturate", type=int, default=1000, help="deliveries in the closed-loop phase")
    args = parser.parse_args()
    print(
        f"signed app_mention deliveries to /slack/events: {args.rate:.0f}/s for {args.seconds:.0f} s "
        f"(25 % retries), then {args.saturate} at concurrency 32; {os.cpu_count()} cores shared by "
        "load, fake Slack and server"
    )
    bare_load, bare_top = await measure_bare(args)
    show("bare paced", bare_load)
    show("bare saturated", bare_top)
    load, top, unique, created = await measure_gateway(args)
    show("gateway paced", load)
    show("gateway saturated", top)
    print(f"unique events {unique}, runs created {created}")
    print(
        json.dumps(
            {
                "p50_ms": round(load["p50_ms"], 2),
                "p99_ms": round(load["p99_ms"], 2),
                "rps": round(load["rps"], 1),
                "bare_rps": round(bare_load["rps"], 1),
                "ratio": round(load["rps"] / bare_load["rps"], 3),
                "max_rps": round(top["rps"], 1),
                "bare_max_rps": round(bare_top["rps"], 1),
                "max_ratio": round(top["rps"] / bare_top["rps"], 4),
                "bare_p50_ms": round(bare_load["p50_ms"], 2),
                "events_unique": unique,
                "runs_created": created,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
