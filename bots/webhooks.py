"""What every webhook front door shares.

Deliveries are small and signed: one without its signature header, or declaring more than
1 MiB, is refused before its body is read (:func:`webhook_guard`).  The signature is an
HMAC-SHA256 of the raw body compared in constant time (:func:`signed`); a refusal is
problem+json with a catalog code, like every error of the gateway (:func:`refused`); a
delivery is claimed once under the gateway's own Redis prefix (:func:`claim`), so two
gateways sharing a Redis never take each other's deliveries for duplicates.  (Slack's
signatures are slack-bolt's, which checks them itself.)
"""

from __future__ import annotations

import hashlib
import hmac

import structlog
from aiohttp import web
from redis.asyncio import Redis

from bots.web import Handler, problem_response
from core.errors import ErrorCode, OzError
from core.settings import Settings

log = structlog.get_logger(__name__)


def signed(secret: bytes, body: bytes, signature: str | None, *, prefix: str = "") -> bool:
    """Whether ``signature`` is ``prefix`` + the hex HMAC-SHA256 of the raw ``body`` (never
    re-serialised JSON) under ``secret``: Linear sends the bare hex, GitHub ``sha256=<hex>``."""
    if not signature:
        return False
    expected = prefix + hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature.strip().lower())


def refused(
    surface: str, code: ErrorCode, detail: str, *, title: str | None = None, status: int | None = None
) -> OzError:
    """A delivery refused, logged, as the problem+json the app's middleware renders."""
    log.info("webhook.refused", surface=surface, code=code.value, detail=detail)
    return OzError(code, detail, title=title, status=status)


def bad_signature(surface: str, detail: str = "the signature does not match the body") -> OzError:
    return refused(surface, ErrorCode.AUTHENTICATION_REQUIRED, detail, title="Bad signature")


def malformed(surface: str, detail: str) -> OzError:
    return refused(surface, ErrorCode.INVALID_REQUEST, detail, title="Malformed delivery")


def not_configured(surface: str, detail: str) -> OzError:
    """The gateway cannot check this surface's deliveries (its secret is not set)."""
    log.warning("webhook.not_configured", surface=surface, detail=detail)
    return OzError(ErrorCode.INTEGRATION_NOT_CONFIGURED, detail, integration_name=surface)


def _claim_key(settings: Settings, surface: str, key: str) -> str:
    return f"{settings.redis_prefix}{surface}-delivery:{key}"


async def claim(redis: Redis, settings: Settings, surface: str, key: str, ttl_seconds: int) -> bool:
    """True for the first process to see delivery ``key`` of ``surface`` within the TTL."""
    return bool(await redis.set(_claim_key(settings, surface, key), 1, nx=True, ex=ttl_seconds))


async def release(redis: Redis, settings: Settings, surface: str, key: str) -> None:
    """Give a claim back (the delivery could not be handled): its redelivery is handled."""
    await redis.delete(_claim_key(settings, surface, key))


WEBHOOK_SIGNATURES = {
    "/slack/events": "X-Slack-Signature",
    "/linear/webhook": "Linear-Signature",
    "/github/webhook": "X-Hub-Signature-256",
}
WEBHOOK_MAX_BYTES = 1024 * 1024


@web.middleware
async def webhook_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Webhook deliveries are small and signed: one without its signature header, or declaring
    more than 1 MiB, is refused before a byte of its body is read; a longer chunked body stops
    at the limit (413) instead of being buffered."""
    header = WEBHOOK_SIGNATURES.get(request.path)
    if header is None or request.method != "POST" or request.match_info.http_exception is not None:
        return await handler(request)  # not a webhook, or one this gateway does not serve (404)
    if not request.headers.get(header):
        missing = f"the {header} header is missing"
        unsigned = OzError(ErrorCode.AUTHENTICATION_REQUIRED, missing, title="Unsigned delivery")
        return problem_response(unsigned, request)
    if (request.content_length or 0) > WEBHOOK_MAX_BYTES:
        limit = f"webhook bodies are at most {WEBHOOK_MAX_BYTES} bytes"
        return problem_response(OzError(ErrorCode.INVALID_REQUEST, limit, status=413), request)
    return await handler(request.clone(client_max_size=WEBHOOK_MAX_BYTES))
