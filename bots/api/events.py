"""``GET /api/v1/agent/runs/{run_id}/events``: the run's transcript, as JSON or as a live
server-sent-event stream (``Accept: text/event-stream``).

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

from bots.api.context import ASYNC_REDIS, principal, reading
from core import runs
from core.events import RunEvent, channel, transcript
from core.models import Principal, RunState
from core.models.wire import TERMINAL_STATES

KEEPALIVE_SECONDS = 15.0
STATE_POLL_SECONDS = 1.0


def _page(session: Session, who: Principal, run_id: str, after: int) -> tuple[RunState, list[RunEvent]]:
    run = runs.visible_run(session, who, run_id)
    return run.state, transcript(session, run_id, after=after)


def _after(request: web.Request) -> int:
    raw = request.headers.get("Last-Event-ID") or request.query.get("after") or "0"
    try:
        return max(int(raw), 0)
    except ValueError:
        raise web.HTTPBadRequest(text="after must be a whole number") from None


async def run_events(request: web.Request) -> web.StreamResponse:
    run_id = request.match_info["run_id"]
    after = _after(request)
    if "text/event-stream" not in request.headers.get("Accept", ""):
        state, events = await reading(request, _page, principal(request), run_id, after)
        return web.json_response(
            {
                "run_id": run_id,
                "state": state.value,
                "events": [e.model_dump(mode="json", exclude_none=True) for e in events],
                "last_seq": events[-1].seq if events else after,
            }
        )
    return await _stream(request, run_id, after)


def _sse(event: RunEvent) -> bytes:
    return f"id: {event.seq}\nevent: {event.kind.value}\ndata: {event.model_dump_json(exclude_none=True)}\n\n".encode()


async def _stream(request: web.Request, run_id: str, after: int) -> web.StreamResponse:
    redis: Redis = request.app[ASYNC_REDIS]
    who = principal(request)
    await reading(request, runs.visible_run, who, run_id)  # 404 / 403 before any stream starts
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    pubsub = redis.pubsub()
    await pubsub.subscribe(channel(run_id))
    last = after
    try:
        state, stored = await reading(request, _page, who, run_id, last)
        for event in stored:
            await response.write(_sse(event))
            last = event.seq
        idle = 0.0
        while state not in TERMINAL_STATES:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=STATE_POLL_SECONDS)
            if message is not None:
                event = RunEvent.model_validate(json.loads(message["data"]))
                if event.seq and event.seq > last:
                    await response.write(_sse(event))
                    last = event.seq
                continue
            idle += STATE_POLL_SECONDS
            if idle >= KEEPALIVE_SECONDS:
                await response.write(b": keepalive\n\n")
                idle = 0.0
            state, missed = await reading(request, _page, who, run_id, last)  # also catches a lost publish
            for event in missed:
                await response.write(_sse(event))
                last = event.seq
        await response.write(f"event: end\ndata: {json.dumps({'state': state.value})}\n\n".encode())
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            await pubsub.aclose()
    return response
