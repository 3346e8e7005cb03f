"""Wiring the Linear front door into the gateway's aiohttp app and the reporter process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from datetime import timedelta

from aiohttp import web
from redis.asyncio import Redis

from bots.linear.clients import LinearClients
from bots.linear.handler import LINEAR_FRONT, LinearFrontDoor
from bots.linear.reporter import LinearReporter
from core import inbox
from core.queue import RunQueue
from core.settings import Settings
from core.store import Store


def linear_configured(settings: Settings) -> bool:
    return bool(settings.linear_webhook_secret or settings.linear_access_token or settings.linear_client_id)


def build_reporter(settings: Settings, store: Store, redis: Redis, executor: Executor) -> LinearReporter:
    return LinearReporter(LinearClients(settings, store, executor), store, redis, settings, executor)


def linear_lifecycle(
    open_front: Callable[[web.Application], tuple[Settings, Store, RunQueue | None, Redis, Executor]],
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A ``cleanup_ctx`` entry: the front door with the app's resources; work in flight finishes first."""

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        settings, store, queue, redis, executor = open_front(app)
        reporter = build_reporter(settings, store, redis, executor)
        front = app[LINEAR_FRONT] = LinearFrontDoor(settings, store, queue, executor, reporter.clients, reporter)
        sweeper = asyncio.create_task(
            inbox.take_up_forever(
                store,
                executor,
                "linear",
                front.take_up,
                lease=timedelta(seconds=settings.inbox_lease_seconds),
                every=settings.inbox_sweep_seconds,
            )
        )
        yield
        sweeper.cancel()
        await asyncio.gather(*app[LINEAR_FRONT].tasks, return_exceptions=True)
        await reporter.clients.close()

    return lifecycle
