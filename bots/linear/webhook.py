"""``/linear/webhook``: verify, deduplicate, answer 200 at once, work after.

The signature is the hex HMAC-SHA256 of the *raw* body (never re-serialised JSON) under the
webhook secret, compared in constant time; a ``webhookTimestamp`` more than a minute off is
refused as a replay.  Linear retries a delivery it thinks failed and may disable a slow
webhook, so the answer never waits for Linear, the store's slow paths or a run.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError
from redis.exceptions import RedisError

from bots.api.context import ASYNC_REDIS, SETTINGS, public
from bots.linear.handler import LINEAR_FRONT, LinearFrontDoor

log = structlog.get_logger(__name__)
MAX_SKEW_MS = 60_000
DEDUPE_TTL = 7 * 24 * 3600
"""Linear retries after 1 minute, 1 hour and 6 hours."""


class Identified(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str


class Envelope(BaseModel):
    """What every Linear webhook body carries, and the shape of what the answer itself reads
    (the dedupe key); the rest is read by the handler."""

    model_config = ConfigDict(extra="allow")
    type: str
    action: str
    webhookTimestamp: int
    agentSession: Identified | None = None
    agentActivity: Identified | None = None
    data: dict | None = None


def _refuse(status: int, reason: str) -> web.Response:
    log.info("linear.webhook_refused", status=status, reason=reason)
    return web.json_response({"error": reason}, status=status)


def signature_ok(secret: bytes, raw: bytes, signature: str | None) -> bool:
    expected = hmac.new(secret, raw, hashlib.sha256).hexdigest()
    return bool(signature) and hmac.compare_digest(expected, signature.strip().lower())


def dedupe_key(envelope: Envelope, delivery: str | None) -> str:
    """The semantic identity of a delivery: a redelivery with a new delivery id is still the same."""
    kind, action = envelope.type, envelope.action
    if kind == "AgentSessionEvent":
        session = envelope.agentSession.id if envelope.agentSession else None
        activity = envelope.agentActivity.id if envelope.agentActivity else ""
        return f"linear:session:{session}:{action}:{activity}"
    data = envelope.data or {}
    if data.get("id"):
        return f"linear:{kind}:{data['id']}:{action}:{data.get('updatedAt', '')}"
    return f"linear:delivery:{delivery}"


@public
async def receive(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    secret = settings.linear_webhook_secret
    raw = await request.read()
    if secret is None or not signature_ok(
        secret.get_secret_value().encode(), raw, request.headers.get("Linear-Signature")
    ):
        return _refuse(401, "bad signature")
    try:
        body = json.loads(raw)
        envelope = Envelope.model_validate(body)
    except (ValueError, ValidationError, RecursionError):
        return _refuse(400, "malformed payload")
    if abs(time.time() * 1000 - envelope.webhookTimestamp) > MAX_SKEW_MS:
        return _refuse(401, "stale webhookTimestamp")
    keys = [settings.redis_prefix + dedupe_key(envelope, request.headers.get("Linear-Delivery"))]
    if request.headers.get("Linear-Delivery"):
        keys.append(f"{settings.redis_prefix}linear:delivery:{request.headers['Linear-Delivery']}")
    claimed: list[str] = []
    try:
        for key in keys:
            if not await request.app[ASYNC_REDIS].set(key, "1", nx=True, ex=DEDUPE_TTL):
                log.info("linear.duplicate_delivery", key=key)
                return web.json_response({"ok": True, "duplicate": True})
            claimed.append(key)
    except RedisError as exc:  # the run's idempotency key still makes one run per session
        log.warning("linear.dedupe_unavailable", reason=type(exc).__name__)
    front: LinearFrontDoor = request.app[LINEAR_FRONT]
    front.spawn(body, claimed)
    return web.json_response({"ok": True})
