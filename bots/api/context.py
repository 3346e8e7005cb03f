"""Typed application state of the gateway's aiohttp app, and the bridge to blocking code.

``core`` is synchronous (SQLAlchemy sessions, redis-py); handlers call it through
:func:`blocking` on a bounded thread pool so the event loop never waits on a database.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from aiohttp import web
from redis.asyncio import Redis as AsyncRedis

from core.keys import UseThrottle
from core.models import Principal
from core.offload import off_loop
from core.queue import RunQueue
from core.secrets import Vault
from core.settings import Settings
from core.store import Store

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
QUEUE = web.AppKey("queue", RunQueue)
EXECUTOR = web.AppKey("executor", ThreadPoolExecutor)
KEY_USE = web.AppKey("key_use", UseThrottle)
PRINCIPAL = web.RequestKey("principal", Principal)
ASYNC_REDIS = web.AppKey("async_redis", AsyncRedis)
VAULT = web.AppKey("vault", Vault)

P = ParamSpec("P")
T = TypeVar("T")


async def blocking(request: web.Request, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    return await off_loop(request.app[EXECUTOR], fn, *args, **kwargs)


H = TypeVar("H", bound=Callable)


def public(handler: H) -> H:
    """Mark a handler as needing no bearer key (the OpenAPI document, signed downloads)."""
    handler.public = True  # type: ignore[attr-defined]
    return handler


def is_public(handler: object) -> bool:
    return bool(getattr(handler, "public", False))


def principal(request: web.Request) -> Principal:
    """The authenticated caller, set by the auth middleware for every ``/api/v1`` route."""
    return request[PRINCIPAL]


async def in_session(request: web.Request, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
    """Run ``fn(session, *args)`` in one store transaction, off the event loop."""
    return await blocking(request, request.app[STORE].call, fn, *args, **kwargs)


async def reading(request: web.Request, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
    """Like :func:`in_session` for work that only reads (lists, lookups, authentication)."""
    return await blocking(request, request.app[STORE].call, fn, *args, readonly=True, **kwargs)
