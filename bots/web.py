"""Web plumbing every front door shares: the app's typed state and the bridge to blocking
code, the route record, problem+json for every error, and the one plain page shape of
browser flows (sign-in forms, OAuth callbacks, link confirmations).

``core`` is synchronous (SQLAlchemy sessions, redis-py); handlers call it through
:func:`blocking` on a bounded thread pool so the event loop never waits on a database.
Every front door (``bots/api``, ``bots/slack``, ``bots/linear``, ``bots/github``,
``bots/console``) builds on this module and none imports another; ``bots/app.py`` mounts
them all.
"""

from __future__ import annotations

import html
import json
import secrets
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import structlog
from aiohttp import web
from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis

from core.errors import PROBLEM_CONTENT_TYPE, ErrorCode, OzError
from core.offload import off_loop
from core.queue import RunQueue
from core.settings import Settings
from core.store import Store
from core.vault import Vault

log = structlog.get_logger(__name__)

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
QUEUE = web.AppKey("queue", RunQueue)
EXECUTOR = web.AppKey("executor", ThreadPoolExecutor)
ACK_EXECUTOR = web.AppKey("ack_executor", ThreadPoolExecutor)
"""Threads of their own for keeping webhook deliveries before they are answered: an ack never
waits behind the work earlier deliveries do after theirs (which may fill ``EXECUTOR``)."""
ASYNC_REDIS = web.AppKey("async_redis", Redis)
VAULT = web.AppKey("vault", Vault)

P = ParamSpec("P")
T = TypeVar("T")
H = TypeVar("H", bound=Callable)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    """One route of a front door; the Oz API's also describe themselves for the OpenAPI document."""

    method: str
    path: str
    handler: Handler
    summary: str
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response_status: int = 200
    text_response: bool = False


# --- the bridge to blocking code ---------------------------------------------------------------


async def blocking(request: web.Request, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    return await off_loop(request.app[EXECUTOR], fn, *args, **kwargs)


async def in_session(request: web.Request, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn(session, *args)`` in one store transaction, off the event loop."""
    return await off_loop(request.app[EXECUTOR], request.app[STORE].call, fn, *args, **kwargs)


async def reading(request: web.Request, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Like :func:`in_session` for work that only reads (lists, lookups, authentication)."""
    return await off_loop(request.app[EXECUTOR], request.app[STORE].call, fn, *args, readonly=True, **kwargs)


# --- who may call ----------------------------------------------------------------------------


def public(handler: H) -> H:
    """Mark a handler as needing no bearer key (the OpenAPI document, signed downloads, webhooks
    and browser pages, which authenticate their own way)."""
    handler.public = True  # type: ignore[attr-defined]
    return handler


def is_public(handler: object) -> bool:
    return bool(getattr(handler, "public", False))


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


# --- errors ----------------------------------------------------------------------------------


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


# --- browser pages -----------------------------------------------------------------------------


def page(title: str, body: str, status: int = 200, form: str = "") -> web.Response:
    """``form`` is markup the caller built (its values escaped); ``title`` and ``body`` are text."""
    document = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title></head>"
        "<body style='font-family:sans-serif;max-width:40em;margin:4em auto;padding:0 1em'>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(body)}</p>{form}</body></html>"
    )
    return web.Response(text=document, content_type="text/html", status=status)


def public_url(request: web.Request) -> str:
    """Where browsers reach the gateway: ``OZGW_PUBLIC_URL``, else the address this request came to."""
    return (request.app[SETTINGS].public_url or str(request.url.origin())).rstrip("/")


class BrowserFlow:
    """Binds an OAuth round trip to the browser that started it: a single-use nonce kept in
    Redis (with what the flow is for) and in an ``HttpOnly`` cookie.  The provider's callback
    is accepted only with the same nonce in the signed ``state`` *and* the cookie, so a callback
    URL opened in someone else's browser cannot finish the flow for them (or the reverse)."""

    def __init__(self, name: str, path: str, ttl_seconds: int = 15 * 60) -> None:
        self.cookie, self.path, self.ttl = f"oz_{name}", path, ttl_seconds
        self.name = name

    def _key(self, settings: Settings, nonce: str) -> str:
        return f"{settings.redis_prefix}{self.name}:{nonce}"

    async def begin(self, settings: Settings, redis: Redis, value: str) -> str:
        nonce = secrets.token_urlsafe(24)
        await redis.set(self._key(settings, nonce), value, ex=self.ttl)
        return nonce

    def redirect(self, request: web.Request, url: str, nonce: str) -> web.HTTPSeeOther:
        response = web.HTTPSeeOther(url)
        response.set_cookie(
            self.cookie,
            nonce,
            max_age=self.ttl,
            path=self.path,
            httponly=True,
            samesite="Lax",
            secure=public_url(request).startswith("https://"),
        )
        return response

    async def finish(self, request: web.Request, settings: Settings, redis: Redis, nonce: str) -> str:
        """What ``begin`` kept, once; a foreign browser or a replay is refused."""
        if not secrets.compare_digest(request.cookies.get(self.cookie, ""), nonce):
            raise OzError(
                ErrorCode.NOT_AUTHORIZED,
                "finish in the browser you started in (this one did not start the authorization); start again",
            )
        value = await redis.getdel(self._key(settings, nonce))
        if value is None:
            raise OzError(ErrorCode.NOT_AUTHORIZED, "this authorization link was already used; start again")
        return value.decode() if isinstance(value, bytes) else value

    def forget(self, response: web.StreamResponse) -> None:
        response.del_cookie(self.cookie, path=self.path)
