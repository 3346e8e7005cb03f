"""Correctly signed webhook deliveries whose content is mutated from the real recorded payloads
(Slack events, Linear agent sessions and data changes, GitHub App events): a field replaced,
dropped or retyped anywhere in the tree.  Signed means it passes the front door, so this
reaches the handlers themselves; whatever the shape, the gateway answers below 500 and keeps
serving."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from core.queue import RunQueue
from core.store import Store
from tests.fuzz.test_front_doors import FUZZ, assert_sane, json_values, summary
from tests.support.fuzz import OpenGateway

pytestmark = pytest.mark.timeout(600)
ROOT = Path(__file__).resolve().parents[2]
SLACK = sorted((ROOT / "tests" / "slack" / "fixtures").glob("*.json"))
LINEAR = sorted((ROOT / "tests" / "linear" / "fixtures").glob("*.json"))
GITHUB = sorted((ROOT / "tests" / "credentials" / "fixtures").glob("*.json"))
SURFACES = {"slack": SLACK, "linear": LINEAR, "github": GITHUB}


@st.composite
def mutated(draw: st.DrawFn, value: object, depth: int = 0) -> object:
    """``value`` with one random change somewhere below it (or none, now and then)."""
    if depth > 6 or draw(st.integers(0, 5)) == 0:
        return draw(json_values)
    if isinstance(value, dict) and value:
        value = dict(value)
        key = draw(st.sampled_from(sorted(value)))
        match draw(st.integers(0, 3)):
            case 0:
                del value[key]
            case _:
                value[key] = draw(mutated(value[key], depth + 1))
        return value
    if isinstance(value, list) and value:
        value = list(value)
        index = draw(st.integers(0, len(value) - 1))
        value[index] = draw(mutated(value[index], depth + 1))
        return value
    return draw(json_values)


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[str, dict | object]:
    surface = draw(st.sampled_from(sorted(SURFACES)))
    fixture = draw(st.sampled_from(SURFACES[surface]))
    body = json.loads(fixture.read_text())
    if surface == "slack" and fixture.name.startswith("socket_mode"):
        body = body.get("payload", body)
    for _ in range(draw(st.integers(1, 3))):
        body = draw(mutated(copy.deepcopy(body)))
    return surface, fixture.name, body


def signed(gateway: OpenGateway, surface: str, fixture: str, body: object) -> dict:
    if surface == "linear" and isinstance(body, dict):
        body = {**body, "webhookTimestamp": int(time.time() * 1000)}
    event = str(body.get("type", "")) if isinstance(body, dict) else ""
    return signed_raw(gateway, surface, fixture, json.dumps(body).encode(), event)


def signed_raw(gateway: OpenGateway, surface: str, fixture: str, raw: bytes, event: str = "") -> dict:
    """A delivery of ``raw`` as the surface signs it (whatever ``raw`` holds)."""
    held = gateway.settings
    if surface == "slack":
        ts = str(int(time.time()))
        secret = held.slack_signing_secret.get_secret_value()
        headers = {
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": "v0="
            + hmac.new(secret.encode(), f"v0:{ts}:".encode() + raw, hashlib.sha256).hexdigest(),
        }
        path = "/slack/events"
    elif surface == "linear":
        secret = held.linear_webhook_secret.get_secret_value()
        headers = {
            "Linear-Delivery": str(uuid.uuid4()),
            "Linear-Event": event if event.isascii() and event.isprintable() else "",
            "Linear-Signature": hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest(),
        }
        path = "/linear/webhook"
    else:
        secret = held.github_webhook_secret.get_secret_value()
        headers = {
            "X-GitHub-Event": fixture.split(".")[0],
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest(),
        }
        path = "/github/webhook"
    headers["Content-Type"] = "application/json"
    return {"method": "POST", "path": path, "headers": headers, "params": {}, "data": raw}


def test_signed_deliveries_of_any_shape_never_fail_the_gateway(
    open_gateway: OpenGateway, store: Store, queue: RunQueue
):
    @FUZZ
    @given(delivery=deliveries())
    def check(delivery: tuple[str, str, object]) -> None:
        request = signed(open_gateway, *delivery)
        response = requests.post(
            open_gateway.server.url + request["path"], data=request["data"], headers=request["headers"], timeout=30
        )
        assert_sane(open_gateway, request, response, seen)

    seen: Counter[int] = Counter()
    check()
    summary("signed-deliveries", seen)
    time.sleep(1.0)  # handling after the answer: the gateway still answers when it is done
    assert requests.get(open_gateway.server.url + "/healthz", timeout=10).status_code in (200, 503)
