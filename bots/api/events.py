"""``GET /api/v1/agent/runs/{run_id}/events``: the run's transcript, as JSON or as a live
server-sent-event stream (``Accept: text/event-stream``, ``bots/streams.py``)."""

from __future__ import annotations

from aiohttp import web

from bots.api.context import principal
from bots.streams import after_of, page, stream
from bots.web import reading


async def run_events(request: web.Request) -> web.StreamResponse:
    run_id = request.match_info["run_id"]
    after = after_of(request)
    if "text/event-stream" not in request.headers.get("Accept", ""):
        state, events = await reading(request, page, principal(request), run_id, after)
        return web.json_response(
            {
                "run_id": run_id,
                "state": state.value,
                "events": [e.model_dump(mode="json", exclude_none=True) for e in events],
                "last_seq": events[-1].seq if events else after,
            }
        )
    return await stream(request, principal(request), run_id, after)
