"""``GET /api/v1/agent/environments``: the team's environments, as the Oz API lists them."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.orm import Session

from bots.api.context import principal
from bots.api.runs import json_response
from bots.web import reading
from core import environments
from core.errors import invalid
from core.models import Principal
from core.models.wire import ListEnvironmentsResponse


def _list(session: Session, who: Principal, sort_by: str) -> ListEnvironmentsResponse:
    envs = environments.list_environments(session, who.team_uid, sort_by)
    return ListEnvironmentsResponse(environments=[environments.to_cloud_environment(session, e) for e in envs])


async def list_environments(request: web.Request) -> web.Response:
    sort_by = request.query.get("sort_by", "last_updated")
    if sort_by not in ("name", "last_updated"):
        raise invalid("sort_by must be name or last_updated")
    return json_response(await reading(request, _list, principal(request), sort_by))
