"""A run's transcript as a live server-sent-event stream, for whoever may see the run (an API
key's holder, a console session's person).

The stream subscribes to the run's Redis channel *before* replaying the stored events, so no
event falls between replay and live tail; duplicates are dropped by sequence number.  It
ends with an ``end`` event once the run is finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import web
from redis.asyncio import Redis
from sqlalchemy.orm import Session

from bots.web import ASYNC_REDIS, QUEUE, reading
from core import runs
from core.errors import ErrorCode, OzError
from core.events import RunEvent, channel, transcript
from core.models import Principal, RunState
from core.models.wire import TERMINAL_STATES

FALLBACK_POLL_SECONDS = 15.0
"""How often an idle stream sends a keepalive and re-reads the store anyway (a publish Redis
lost); events and state changes themselves arrive on the run's channel."""
STREAMS_PER_KEY = 8
STREAMS: web.AppKey[dict] = web.AppKey("event_streams", dict)
SHUTTING_DOWN = web.AppKey("event_streams_shutting_down", asyncio.Event)
"""Set when the web process stops: open streams end (clients reconnect elsewhere with
``Last-Event-ID``) instead of holding the shutdown for their whole lifetime."""
WAKE_SECONDS = 1.0


def install(app: web.Application) -> None:
    """The app's stream bookkeeping, and their end at shutdown."""
    app[STREAMS] = {}
    app[SHUTTING_DOWN] = asyncio.Event()

    async def end_streams(app: web.Application) -> None:
        app[SHUTTING_DOWN].set()

    app.on_shutdown.append(end_streams)


def page(session: Session, who: Principal, run_id: str, after: int) -> tuple[RunState, list[RunEvent]]:
    run = runs.visible_run(session, who, run_id)
    return run.state, transcript(session, run_id, after=after)


def after_of(request: web.Request) -> int:
    raw = request.headers.get("Last-Event-ID") or request.query.get("after") or "0"
    try:
        return max(int(raw), 0)
    except ValueError:
        raise web.HTTPBadRequest(text="after must be a whole number") from None


def _sse(event: RunEvent) -> bytes:
    return f"id: {event.seq}\nevent: {event.kind.value}\ndata: {event.model_dump_json(exclude_none=True)}\n\n".encode()


async def stream(request: web.Request, who: Principal, run_id: str, after: int) -> web.StreamResponse:
    """The live stream for ``who`` (a key's holder, or a console session's person)."""
    await reading(request, runs.visible_run, who, run_id)  # 404 / 403 before any stream starts
    open_streams = request.app[STREAMS]
    holder = who.key_uid or who.uid
    if open_streams.get(holder, 0) >= STREAMS_PER_KEY:
        raise OzError(
            ErrorCode.RESOURCE_UNAVAILABLE,
            f"at most {STREAMS_PER_KEY} live event streams per API key; close one first",
            status=429,
        )
    open_streams[holder] = open_streams.get(holder, 0) + 1
    try:
        return await _tail(request, who, run_id, after)
    finally:
        open_streams[holder] -= 1
        if not open_streams[holder]:
            del open_streams[holder]


async def _tail(request: web.Request, who: Principal, run_id: str, after: int) -> web.StreamResponse:
    redis: Redis = request.app[ASYNC_REDIS]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    pubsub = redis.pubsub()
    await pubsub.subscribe(channel(request.app[QUEUE].prefix, run_id))
    last = after
    try:
        state, stored = await reading(request, page, who, run_id, last)
        for event in stored:
            await response.write(_sse(event))
            last = event.seq or last
        quiet = 0.0
        shutting_down = request.app[SHUTTING_DOWN]
        while state not in TERMINAL_STATES and not shutting_down.is_set():
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=WAKE_SECONDS)
            if message is None:
                quiet += WAKE_SECONDS
                if quiet < FALLBACK_POLL_SECONDS:
                    continue
            quiet = 0.0
            if message is not None:
                data = json.loads(message["data"])
                if "state" in data:  # a state change: read what came before it, then carry on or end
                    state, missed = await reading(request, page, who, run_id, last)
                    for event in missed:
                        await response.write(_sse(event))
                        last = event.seq or last
                    continue
                event = RunEvent.model_validate(data)
                if event.seq and event.seq > last:
                    await response.write(_sse(event))
                    last = event.seq or last
                continue
            await response.write(b": keepalive\n\n")
            state, missed = await reading(request, page, who, run_id, last)  # also catches a lost publish
            for event in missed:
                await response.write(_sse(event))
                last = event.seq or last
        if state in TERMINAL_STATES:
            await response.write(f"event: end\ndata: {json.dumps({'state': state.value})}\n\n".encode())
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            await pubsub.aclose()
    return response
