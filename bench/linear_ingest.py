"""Linear ingest: webhook ack latency, and the time from ``created`` to the first activity.

Drives the real ``oz-gateway serve`` process (webhook handler, gql client, SQLite, Redis) with
signed ``AgentSessionEvent`` ``created`` deliveries at a paced 200/s, a quarter of them
redeliveries of an earlier session, against a fake Linear GraphQL API in a process of its own;
the same paced load goes to a bare aiohttp handler in the same run.  Then the fake's records
give, per session, how long after its delivery left the first ``thought`` arrived.  Last, both
are saturated (closed loop, concurrency 32, unique sessions): ``max_ratio`` is the gateway's
most deliveries per second over the bare handler's (the paced ``ratio`` is ~1 by construction).
Last line: one JSON object.

    .venv/bin/python bench/linear_ingest.py [--seconds 5] [--rate 200] [--saturate 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import hashlib
import hmac
import json
import os
import secrets
import statistics
import sys
import time
import uuid
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.api import ROOT
from bench.ingest import bare, gateway_env, paced, provision, saturated, serving, show, start_fake
from core.logs import configure_logging

TEMPLATE = json.loads((ROOT / "tests" / "linear" / "fixtures" / "agent_session_event.created.json").read_text())


class Deliveries:
    """``created`` events of sessions of their own, and redeliveries of the previous one."""

    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.sent: list[bytes] = []
        self.unique: set[str] = set()
        self.first_sent: dict[str, float] = {}

    def next(self, n: int, retry_every: int) -> tuple[bytes, dict[str, str]]:
        if retry_every and n % retry_every == retry_every - 1 and self.sent:
            raw = self.sent[-1]
        else:
            body = copy.deepcopy(TEMPLATE)
            session = str(uuid.UUID(int=n + 1))
            body["agentSession"]["id"] = session
            # Each session from a comment of its own, as Linear sends them: one comment, one run
            # (the comment is the run's idempotency key, so a shared one would make a single run).
            comment = str(uuid.UUID(int=(1 << 64) + n + 1))
            body["agentSession"]["commentId"] = comment
            body["agentSession"]["comment"]["id"] = comment
            body["webhookTimestamp"] = int(time.time() * 1000)
            raw = json.dumps(body).encode()
            self.sent.append(raw)
            self.unique.add(session)
            self.first_sent[session] = time.time()
        headers = {
            "Content-Type": "application/json",
            "Linear-Delivery": str(uuid.uuid4()),
            "Linear-Signature": hmac.new(self.secret, raw, hashlib.sha256).hexdigest(),
        }
        return raw, headers


async def first_activity_latencies(fake_url: str, deliveries: Deliveries) -> list[float]:
    async with aiohttp.ClientSession() as session, session.get(fake_url.replace("/graphql", "/_operations")) as got:
        operations = await got.json()
    first: dict[str, float] = {}
    for op in operations:
        if op["field"] == "agentActivityCreate":
            sid = op["variables"]["input"]["agentSessionId"]
            first.setdefault(sid, op["at"])
    return sorted(first[s] - deliveries.first_sent[s] for s in deliveries.unique if s in first)


def percentile(values: list[float], q: float) -> float:
    return values[max(0, int(len(values) * q) - 1)] * 1000 if values else float("nan")


async def measure_gateway(args: argparse.Namespace) -> tuple[dict, dict, list[float], int, int]:
    secret = "lin_wh_" + secrets.token_hex(16)
    fake, fake_url = start_fake("tests.fakes.linear", "FakeLinear", "url")
    env, database = gateway_env(
        "ozgw-bench-linear-",
        OZGW_LINEAR_WEBHOOK_SECRET=secret,
        OZGW_LINEAR_ACCESS_TOKEN=secrets.token_hex(20),
        OZGW_LINEAR_API_URL=fake_url,
    )
    provision(env, "linear")
    deliveries = Deliveries(secret)
    try:
        async with serving(env, database, "/linear/webhook") as gateway:
            load = await paced(gateway.url, deliveries, args.rate, args.seconds)
            created = await gateway.settle(len(deliveries.unique))
            firsts = await first_activity_latencies(fake_url, deliveries)
            top = await saturated(gateway.url, deliveries, args.saturate, 32, 10_000_000)
            created = await gateway.settle(len(deliveries.unique))
    finally:
        fake.terminate()
        fake.wait(10)
    return load, top, firsts, len(deliveries.unique), created


async def measure_bare(args: argparse.Namespace) -> tuple[dict, dict]:
    deliveries = Deliveries("bare")
    async with bare("/linear/webhook") as url:
        load = await paced(url, deliveries, args.rate, args.seconds)
        return load, await saturated(url, deliveries, args.saturate, 32, 10_000_000)


async def main() -> None:
    configure_logging("WARNING")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--saturate", type=int, default=1000, help="deliveries in the closed-loop phase")
    args = parser.parse_args()
    print(
        f"signed AgentSessionEvent created deliveries to /linear/webhook: {args.rate:.0f}/s for "
        f"{args.seconds:.0f} s (25 % redeliveries); {os.cpu_count()} cores shared by load, fake Linear and server"
    )
    bare, bare_top = await measure_bare(args)
    show("bare paced", bare)
    show("bare saturated", bare_top)
    load, top, firsts, unique, created = await measure_gateway(args)
    show("gateway paced", load)
    show("gateway saturated", top)
    print(
        f"created → first activity: p50 {percentile(firsts, 0.5):.1f} ms  p99 {percentile(firsts, 0.99):.1f} ms "
        f"({len(firsts)} sessions); unique events {unique}, runs created {created}"
    )
    print(
        json.dumps(
            {
                "p50_ms": round(load["p50_ms"], 2),
                "p99_ms": round(load["p99_ms"], 2),
                "first_activity_p50_ms": round(statistics.median(firsts) * 1000, 1) if firsts else None,
                "first_activity_p99_ms": round(percentile(firsts, 0.99), 1) if firsts else None,
                "rps": round(load["rps"], 1),
                "bare_rps": round(bare["rps"], 1),
                "ratio": round(load["rps"] / bare["rps"], 3),
                "max_rps": round(top["rps"], 1),
                "bare_max_rps": round(bare_top["rps"], 1),
                "max_ratio": round(top["rps"] / bare_top["rps"], 4),
                "bare_p50_ms": round(bare["p50_ms"], 2),
                "events_unique": unique,
                "runs_created": created,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
