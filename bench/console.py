"""Latency of the console's runs page with 10 000 runs in the team, on SQLite and PostgreSQL.

Each store gets an account, a personal key and ``--runs`` runs (spread over 30 days, every
source and state); the real ``oz-gateway serve`` process answers a browser-like client signed
in through the sign-in form.  Measured: the first page of All runs, a filtered page ("failed
today"-style status + day), and the tenth page through the cursor; next to a bare aiohttp
handler serving a page of the same size, in the same run.  The last line is one JSON object.

    .venv/bin/python bench/console.py [--runs 10000] [--requests 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import aiohttp
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.api import REDIS_URL, ROOT, drop_pg_database, free_port, fresh_pg_database
from core import runs
from core.accounts import create_account
from core.identity import principal_of
from core.ids import new_run_id
from core.keys import create_key
from core.logs import configure_logging
from core.models import RunSourceType, RunState
from core.models.wire import RunAgentRequest
from core.settings import DEFAULT_AGENT_LIMIT
from core.store import Store, utcnow
from core.store.tables import RunRow

BARE_APP = """
import sys
from aiohttp import web
page = open(sys.argv[2]).read()
async def handle(request):
    return web.Response(text=page, content_type="text/html")
app = web.Application()
app.router.add_get("/console/runs", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""
SOURCES = [RunSourceType.API, RunSourceType.SLACK, RunSourceType.LINEAR, RunSourceType.GITHUB_ACTION]
STATES = [RunState.SUCCEEDED, RunState.FAILED, RunState.ERROR, RunState.CANCELLED, RunState.QUEUED]


def seed(database_url: str, count: int) -> str:
    """An account, its key, and ``count`` runs copied from one real run with varied columns."""
    store = Store(database_url)
    store.migrate()
    with store.session() as session:
        account = create_account(session, "bench@example.com", "acme")
        key = create_key(session, account, "bench")[1]
    template = runs.create(
        store, None, principal_of(account), RunAgentRequest(prompt="seed"), agent_limit=DEFAULT_AGENT_LIMIT
    ).run.run_id
    with store.reader() as session:
        row = session.get(RunRow, template)
        base = {c.key: getattr(row, c.key) for c in RunRow.__mapper__.column_attrs}
    now = utcnow()
    rng = random.Random(7)
    batch = []
    for n in range(count - 1):
        created = now - timedelta(seconds=rng.uniform(0, 30 * 24 * 3600))
        state = rng.choice(STATES)
        run_id = new_run_id()
        batch.append(
            base
            | {
                "run_id": run_id,
                "title": f"Bench run {n}",
                "prompt": f"Bench run {n}",
                "state": state.value,
                "source": rng.choice(SOURCES).value,
                "created_at": created,
                "updated_at": created,
                "idempotency_key": None,
                "conversation_id": run_id,
            }
        )
        if len(batch) == 1000:
            with store.session() as session:
                session.execute(insert(RunRow), batch)
            batch = []
    if batch:
        with store.session() as session:
            session.execute(insert(RunRow), batch)
    store.dispose()
    return key


async def sign_in(session: aiohttp.ClientSession, base: str, key: str) -> None:
    async with session.get(f"{base}/console/sign-in") as response:
        form = await response.text()
    pre = re.search(r'name="pre" value="([^"]+)"', form)
    assert pre, "no sign-in form"
    data = {"pre": pre.group(1), "api_key": key, "next": "/console/runs"}
    async with session.post(f"{base}/console/sign-in", data=data, allow_redirects=False) as response:
        assert response.status == 303, response.status


async def timed(session: aiohttp.ClientSession, url: str, requests: int) -> dict:
    latencies = []
    for _ in range(requests):
        started = time.perf_counter()
        async with session.get(url) as response:
            body = await response.read()
            assert response.status == 200, (url, response.status)
        latencies.append(time.perf_counter() - started)
    latencies.sort()
    return {
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[max(int(len(latencies) * 0.99) - 1, 0)] * 1000, 2),
        "bytes": len(body),
    }


async def wait_ready(url: str) -> None:
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url, allow_redirects=False) as response:
                    await response.read()
                    return
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} never answered")


async def measure_gateway(database_url: str, args: argparse.Namespace) -> tuple[dict, str]:
    key = seed(database_url, args.runs)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OZGW_")}
    env.update(
        OZGW_DATA_DIR=tempfile.mkdtemp(prefix="ozgw-bench-"),
        OZGW_DATABASE_URL=database_url,
        OZGW_REDIS_URL=REDIS_URL,
        OZGW_QUEUE_NAME=f"oz-bench-{uuid.uuid4().hex[:8]}",
        OZGW_LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    server = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--port", str(port)], env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(f"{base}/healthz")
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            await sign_in(session, base, key)
            first = f"{base}/console/runs?tab=all"
            async with session.get(first) as response:
                page = await response.text()
            await timed(session, first, 20)  # warm-up
            figures = {"first_page": await timed(session, first, args.requests)}
            day = utcnow().strftime("%Y-%m-%d")
            filtered = f"{base}/console/runs?tab=all&status=Failed&day={day}"
            figures["failed_today"] = await timed(session, filtered, args.requests)
            deep = first
            for _ in range(9):  # the tenth page, through the cursors a person would follow
                async with session.get(deep) as response:
                    found = re.search(r'href="(/console/runs\?[^"]+)" rel="next"', await response.text())
                assert found, "no next page"
                deep = base + found.group(1).replace("&amp;", "&")
            figures["tenth_page"] = await timed(session, deep, args.requests)
            figures["usage"] = await timed(session, f"{base}/console/usage?days=30", max(args.requests // 5, 20))
        return figures, page
    finally:
        server.terminate()
        server.wait(30)


async def measure_bare(page: str, requests: int) -> dict:
    port = free_port()
    path = Path(tempfile.mkdtemp(prefix="ozgw-bench-")) / "page.html"
    path.write_text(page)
    server = subprocess.Popen([sys.executable, "-c", BARE_APP, str(port), str(path)])
    try:
        url = f"http://127.0.0.1:{port}/console/runs"
        await wait_ready(url)
        async with aiohttp.ClientSession() as session:
            await timed(session, url, 20)
            return await timed(session, url, requests)
    finally:
        server.terminate()
        server.wait(30)


def show(label: str, figures: dict) -> None:
    for name, f in figures.items():
        print(f"{label:<9} {name:<13} p50 {f['p50_ms']:8.2f} ms   p99 {f['p99_ms']:8.2f} ms   {f['bytes']} bytes")


async def main() -> None:
    configure_logging("WARNING")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    print(
        f"/console/runs with {args.runs} runs in the team, {args.requests} sequential requests, {os.cpu_count()} cores"
    )
    sqlite, page = await measure_gateway(f"sqlite:///{tempfile.mkdtemp(prefix='ozgw-bench-')}/bench.db", args)
    show("sqlite", sqlite)
    pg_name, pg_url = fresh_pg_database()
    try:
        postgres, _ = await measure_gateway(pg_url, args)
    finally:
        drop_pg_database(pg_name)
    show("postgres", postgres)
    bare = await measure_bare(page, args.requests)
    show("bare", {"same_page": bare})
    ratio = {
        store: round(figures["first_page"]["p50_ms"] / bare["p50_ms"], 1)
        for store, figures in (("sqlite", sqlite), ("postgres", postgres))
    }
    print(json.dumps({"runs": args.runs, "sqlite": sqlite, "postgres": postgres, "bare": bare, "p50_ratio": ratio}))


if __name__ == "__main__":
    asyncio.run(main())
