"""``create_app``: the gateway's aiohttp application, every front door's routes mounted.

The one module above the front doors: each (``bots/api``, ``bots/slack``, ``bots/linear``,
``bots/github``, ``bots/console``) brings its route table and none knows another.  Store,
Redis queue and the thread pool are opened in ``cleanup_ctx`` and closed after it, so the
stock runner, ``oz-gateway serve`` and the tests all build the same app.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web
from redis.asyncio import BlockingConnectionPool
from redis.asyncio import Redis as AsyncRedis

from bots import streams
from bots.api.context import KEY_USE
from bots.api.middleware import auth_middleware
from bots.api.openapi import openapi_document
from bots.api.routes import ROUTES as API_ROUTES
from bots.console import setup_templates
from bots.console.routes import CONSOLE_ROUTES
from bots.github.routes import GITHUB_ROUTES
from bots.linear.app import linear_configured, linear_lifecycle
from bots.linear.routes import LINEAR_ROUTES
from bots.slack.app import build_bot, slack_configured, slack_lifecycle
from bots.slack.linking import RESUMED
from bots.slack.routes import SLACK_EVENTS_ROUTE, SLACK_ROUTES
from bots.web import (
    ACK_EXECUTOR,
    ASYNC_REDIS,
    EXECUTOR,
    QUEUE,
    SETTINGS,
    STORE,
    VAULT,
    blocking,
    problem_middleware,
    public,
)
from bots.webhooks import webhook_guard
from core.keys import UseThrottle
from core.queue import RunQueue
from core.settings import Settings
from core.store import Store
from core.vault import Vault


@public
async def _openapi(_request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


HEALTH_TTL_SECONDS = 2.0


@public
async def _health(request: web.Request) -> web.Response:
    """Liveness plus whether Redis answers; the ping runs off the event loop (a slow Redis must
    not stall every route) and its answer is reused for a moment (a probe storm is one ping)."""
    cached = request.app[HEALTH]
    now = time.monotonic()
    if cached.get("at", -HEALTH_TTL_SECONDS) + HEALTH_TTL_SECONDS <= now:
        pending = cached.get("pending")
        if pending is None or pending.done():
            pending = cached["pending"] = asyncio.ensure_future(blocking(request, request.app[QUEUE].ping))
        cached["queue"] = await asyncio.shield(pending)
        cached["at"] = time.monotonic()
    return web.json_response({"status": "ok", "queue": cached["queue"]})


HEALTH: web.AppKey[dict] = web.AppKey("health", dict)


def create_app(settings: Settings, *, store: Store | None = None, queue: RunQueue | None = None) -> web.Application:
    app = web.Application(
        middlewares=[problem_middleware, webhook_guard, auth_middleware], client_max_size=32 * 1024 * 1024
    )
    app[SETTINGS] = settings
    app[HEALTH] = {}
    streams.install(app)
    app[KEY_USE] = UseThrottle()

    async def resources(app: web.Application) -> AsyncIterator[None]:
        own_store = store is None
        app[STORE] = store or Store(settings.effective_database_url)
        if own_store:
            app[STORE].migrate()
        app[QUEUE] = queue or RunQueue.from_settings(settings)
        app[EXECUTOR] = ThreadPoolExecutor(settings.api_threads, thread_name_prefix="ozgw-api")
        app[ACK_EXECUTOR] = ThreadPoolExecutor(2, thread_name_prefix="ozgw-ack")
        # Blocking pool: a burst (hundreds of Slack deliveries) waits for a connection, never fails.
        app[ASYNC_REDIS] = AsyncRedis(
            connection_pool=BlockingConnectionPool.from_url(
                settings.effective_redis_url, max_connections=64, timeout=5, socket_connect_timeout=1.0
            )
        )
        app[VAULT] = Vault.from_settings(settings)
        yield
        await app[ASYNC_REDIS].aclose()
        app[EXECUTOR].shutdown(wait=True)
        app[ACK_EXECUTOR].shutdown(wait=True)
        if own_store:
            app[STORE].dispose()

    app.cleanup_ctx.append(resources)
    setup_templates(app)
    routes = API_ROUTES + GITHUB_ROUTES + CONSOLE_ROUTES
    if slack_configured(settings):
        app[RESUMED] = set()
        app.cleanup_ctx.append(
            slack_lifecycle(
                lambda app, session: build_bot(
                    settings, app[STORE], app[QUEUE], app[EXECUTOR], app[VAULT], session, ack_executor=app[ACK_EXECUTOR]
                )
            )
        )
        routes += SLACK_ROUTES
        if settings.slack_signing_secret is not None:
            routes += (SLACK_EVENTS_ROUTE,)
    if linear_configured(settings):
        app.cleanup_ctx.append(
            linear_lifecycle(lambda app: (settings, app[STORE], app[QUEUE], app[ASYNC_REDIS], app[EXECUTOR]))
        )
        routes += LINEAR_ROUTES
    for route in routes:
        app.router.add_route(route.method, route.path, route.handler)
    app.router.add_get("/api/v1/openapi.json", _openapi)
    app.router.add_get("/healthz", _health)
    return app
