"""``/linear/webhook``: verify, keep (deduplicated), answer 200 at once, work after.

The signature is the hex HMAC-SHA256 of the *raw* body (never re-serialised JSON) under the
webhook secret, compared in constant time; a ``webhookTimestamp`` more than a minute off is
refused as a replay.  Linear retries a delivery it thinks failed and may disable a slow
webhook, so the answer never waits for Linear, the store's slow paths or a run.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from bots import webhooks
from bots.linear.handler import LINEAR_FRONT, LinearFrontDoor
from bots.web import ACK_EXECUTOR, SETTINGS, public
from core import inbox
from core.offload import off_loop

log = structlog.get_logger(__name__)
MAX_SKEW_MS = 60_000


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


def inbox_key(envelope: Envelope, delivery: str | None) -> str:
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
    if secret is None:
        raise webhooks.not_configured("linear", "the Linear webhook secret is not configured")
    if not webhooks.signed(secret.get_secret_value().encode(), raw, request.headers.get("Linear-Signature")):
        raise webhooks.bad_signature("linear")
    try:
        body = json.loads(raw)
        envelope = Envelope.model_validate(body)
    except (ValueError, ValidationError, RecursionError):
        raise webhooks.malformed("linear", "the body is not a Linear webhook payload") from None
    if abs(time.time() * 1000 - envelope.webhookTimestamp) > MAX_SKEW_MS:
        raise webhooks.bad_signature("linear", "webhookTimestamp is more than a minute off (a replay?)")
    key = inbox_key(envelope, request.headers.get("Linear-Delivery"))
    front: LinearFrontDoor = request.app[LINEAR_FRONT]
    lease = timedelta(seconds=settings.inbox_lease_seconds)
    # Kept before the answer (core/inbox.py): a store that cannot keep it fails the answer, and
    # Linear sends it again.
    if not await off_loop(request.app[ACK_EXECUTOR], inbox.accept, front.store, key, "linear", body, lease):
        log.info("linear.duplicate_delivery", key=key)
        return web.json_response({"ok": True, "duplicate": True})
    front.spawn(body, key)
    return web.json_response({"ok": True})
