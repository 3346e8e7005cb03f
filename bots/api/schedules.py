"""``/api/v1/agent/schedules``: scheduled agents (our extension; the Oz API has none yet).

Create, list, read, update, pause, resume and delete cron schedules; the ``scheduler``
process fires them (``core/schedules.py``).
"""

from __future__ import annotations

from aiohttp import web

from bots.api.context import principal
from bots.api.middleware import read_json
from bots.api.runs import json_response
from bots.web import SETTINGS, in_session, reading
from core import schedules
from core.schedules import ScheduleCreate, ScheduleUpdate


def _limit(request: web.Request) -> int:
    return request.app[SETTINGS].agent_limit


async def list_schedules(request: web.Request) -> web.Response:
    return json_response(await reading(request, schedules.list_schedules, principal(request)))


async def create_schedule(request: web.Request) -> web.Response:
    spec = ScheduleCreate.model_validate(await read_json(request))
    item = await in_session(request, schedules.create, principal(request), spec, _limit(request))
    return json_response(item, status=201)


async def get_schedule(request: web.Request) -> web.Response:
    return json_response(await reading(request, schedules.get, principal(request), request.match_info["uid"]))


async def update_schedule(request: web.Request) -> web.Response:
    changes = ScheduleUpdate.model_validate(await read_json(request))
    uid = request.match_info["uid"]
    return json_response(
        await in_session(request, schedules.update_schedule, principal(request), uid, changes, _limit(request))
    )


async def pause_schedule(request: web.Request) -> web.Response:
    uid = request.match_info["uid"]
    return json_response(
        await in_session(request, schedules.set_paused, principal(request), uid, True, _limit(request))
    )


async def resume_schedule(request: web.Request) -> web.Response:
    uid = request.match_info["uid"]
    return json_response(
        await in_session(request, schedules.set_paused, principal(request), uid, False, _limit(request))
    )


async def delete_schedule(request: web.Request) -> web.Response:
    await in_session(request, schedules.delete, principal(request), request.match_info["uid"])
    return web.Response(status=204)
