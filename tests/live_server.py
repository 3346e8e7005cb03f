"""A real aiohttp server on 127.0.0.1 (or another local address), port 0, in a background
thread, for sync clients."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Self

from aiohttp import web

from core.queue import RunQueue
from core.settings import Settings
from core.store import Store


class LiveServer:
    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.host = "127.0.0.1"
        """Where it listens: set before :meth:`start` (the multi-host tests use their service address)."""
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app, access_log=None)
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="live-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v1"

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, self.host, 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("live server did not start")

    def stop(self) -> None:
        if not self._thread.is_alive():  # never started (a cluster that failed to start)
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)


class FakeService:
    """What every fake third-party API shares: its live server, started and stopped by tests,
    and an outage on demand (:meth:`fail_next`), as the real service has them."""

    server: LiveServer
    _failing: tuple[int, int, str | None] = (0, 503, None)

    def start(self) -> Self:
        self.server.app.middlewares.append(self._outage)  # before the app freezes at start-up
        self.server.start()
        return self

    def fail_next(self, count: int, status: int = 503, retry_after: str | None = None) -> None:
        """Answer the next ``count`` requests with ``status`` (429 with ``Retry-After``, a 5xx)."""
        self._failing = (count, status, retry_after)

    @web.middleware
    async def _outage(self, request: web.Request, handler: Any) -> web.StreamResponse:
        count, status, retry_after = self._failing
        if count <= 0:
            return await handler(request)
        self._failing = (count - 1, status, retry_after)
        headers = {"Retry-After": retry_after} if retry_after else {}
        return web.json_response({"ok": False, "error": "outage", "message": "outage"}, status=status, headers=headers)

    def stop(self) -> None:
        self.server.stop()

    @property
    def url(self) -> str:
        return self.server.url


@contextmanager
def gateway_server(settings: Settings, store: Store, queue: RunQueue) -> Iterator[LiveServer]:
    """The gateway's own app (every front door its settings enable), live on a free port."""
    from bots.app import create_app

    server = LiveServer(create_app(settings, store=store, queue=queue))
    server.start()
    try:
        yield server
    finally:
        server.stop()
