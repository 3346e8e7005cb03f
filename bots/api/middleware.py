"""Request middleware: problem+json for every error, bearer-key authentication.

Every error leaves as ``application/problem+json`` with the catalog's fields and an
``x-should-retry`` header, which the Oz SDK obeys instead of guessing from the status.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from pydantic import ValidationError

from bots.api.context import KEY_USE, PRINCIPAL, in_session, is_public, reading
from core.errors import PROBLEM_CONTENT_TYPE, ErrorCode, OzError
from core.keys import authenticate, record_use

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def validation_detail(exc: ValidationError) -> str:
    """One line per problem, naming the field the way the client sent it."""
    parts = []
    for error in exc.errors():
        loc = ".".join(str(p) for p in error["loc"] if p not in ("body",))
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {message}" if loc else message)
    return "; ".join(parts)


def problem_response(error: OzError, request: web.Request, trace_id: str | None = None) -> web.Response:
    body = error.problem(instance=request.path, trace_id=trace_id)
    return web.Response(
        status=error.status,
        text=json.dumps(body),
        content_type=PROBLEM_CONTENT_TYPE,
        headers={"x-should-retry": "true" if error.retryable else "false"},
    )


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    trace_id = uuid.uuid4().hex
    try:
        return await handler(request)
    except OzError as error:
        if error.status >= 500:
            log.warning("api.platform_error", path=request.path, code=error.code.value, trace_id=trace_id)
        return problem_response(error, request, trace_id if error.entry.platform else None)
    except ValidationError as exc:
        return problem_response(OzError(ErrorCode.INVALID_REQUEST, validation_detail(exc)), request)
    except UnicodeDecodeError:  # a form or query a handler decoded: bytes that are not UTF-8
        return problem_response(OzError(ErrorCode.INVALID_REQUEST, "the request is not valid UTF-8"), request)
    except web.HTTPNotFound:
        return problem_response(OzError(ErrorCode.RESOURCE_NOT_FOUND, f"no route {request.path}"), request)
    except web.HTTPMethodNotAllowed as exc:
        detail = f"{request.method} is not allowed on {request.path}; use {', '.join(sorted(exc.allowed_methods))}"
        return problem_response(OzError(ErrorCode.OPERATION_NOT_SUPPORTED, detail), request)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("api.unhandled_error", path=request.path, method=request.method, trace_id=trace_id)
        return problem_response(OzError(ErrorCode.INTERNAL_ERROR), request, trace_id)


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


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/api/v1/") and not is_public(request.match_info.handler):
        who = request[PRINCIPAL] = await reading(request, authenticate, bearer_token(request))
        if who.key_uid and request.app[KEY_USE].due(who.key_uid):
            await in_session(request, record_use, who.key_uid)
    return await handler(request)


async def read_json(request: web.Request) -> dict:
    """The JSON object body, or ``invalid_request`` saying what is wrong with it."""
    if not request.can_read_body:
        return {}
    raw = await request.read()
    try:  # JSON is UTF-8 (RFC 8259), whatever charset the header claims
        body = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise OzError(ErrorCode.INVALID_REQUEST, "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise OzError(ErrorCode.INVALID_REQUEST, "the request body must be a JSON object")
    return body
