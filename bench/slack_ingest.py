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
import sys
import time
from pathlib import Path

from slack_sdk.signature import SignatureVerifier

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.ingest import bare, cli, gateway_env, paced, provision, saturated, serving, show, start_fake
from core.logs import configure_logging
from tests.fakes.slack import event_fixture

TEMPLATE = event_fixture("event.app_mention.thread")


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


async def measure_gateway(args: argparse.Namespace) -> tuple[dict, dict, int, int]:
    secret = secrets.token_hex(16)
    fake, fake_url = start_fake("tests.fakes.slack", "FakeSlack", "api_url")
    env, database = gateway_env(
        "ozgw-bench-slack-",
        OZGW_SLACK_SIGNING_SECRET=secret,
        OZGW_SLACK_BOT_TOKEN="xoxb-" + secrets.token_hex(12),
        OZGW_SLACK_API_URL=fake_url,
    )
    provision(env, "slack")
    cli(env, "identity", "link", "slack", TEMPLATE["team_id"], TEMPLATE["event"]["user"], "ada@acme.dev")
    deliveries = Deliveries(secret)
    try:
        async with serving(env, database, "/slack/events") as gateway:
            load = await paced(gateway.url, deliveries, args.rate, args.seconds)
            top = await saturated(gateway.url, deliveries, args.saturate, 32, 10_000_000)
            created = await gateway.settle(len(deliveries.unique))
    finally:
        fake.terminate()
        fake.wait(10)
    return load, top, len(deliveries.unique), created


async def measure_bare(args: argparse.Namespace) -> tuple[dict, dict]:
    deliveries = Deliveries(secrets.token_hex(16))
    async with bare("/slack/events") as url:
        return await paced(url, deliveries, args.rate, args.seconds), await saturated(
            url, deliveries, args.saturate, 32, 10_000_000
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
