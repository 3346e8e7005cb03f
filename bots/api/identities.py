"""``/api/v1/agent/identities``: cloud agents CRUD (people only for changes)."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.orm import Session

from bots.api.context import principal
from bots.api.middleware import read_json
from bots.api.runs import json_response
from bots.web import SETTINGS, VAULT, in_session, reading
from core import agents
from core.models.wire import AgentCreateRequest, AgentUpdateRequest, ListAgentIdentitiesResponse


def _list(session: Session, team_uid: str, limit: int) -> ListAgentIdentitiesResponse:
    listed = agents.list_agents(session, team_uid, limit)
    return ListAgentIdentitiesResponse(agents=[agents.to_response(a) for a in listed])


def _limit(request: web.Request) -> int:
    """The plan's cloud agents (``OZGW_AGENT_LIMIT``)."""
    return request.app[SETTINGS].agent_limit


async def list_identities(request: web.Request) -> web.Response:
    result = await reading(request, _list, principal(request).team_uid, _limit(request))
    return json_response(result)


async def get_identity(request: web.Request) -> web.Response:
    team, uid = principal(request).team_uid, request.match_info["uid"]
    agent = await reading(request, agents.get_agent, team, uid, _limit(request))
    return json_response(agents.to_response(agent))


async def create_identity(request: web.Request) -> web.Response:
    body = AgentCreateRequest.model_validate(await read_json(request))
    who, vault = principal(request), request.app[VAULT]
    agent = await in_session(request, agents.create_agent, who, body, vault, limit=_limit(request))
    return json_response(agents.to_response(agent))


async def update_identity(request: web.Request) -> web.Response:
    body = AgentUpdateRequest.model_validate(await read_json(request))
    who, uid, vault = principal(request), request.match_info["uid"], request.app[VAULT]
    agent = await in_session(request, agents.update_agent, who, uid, body, vault, limit=_limit(request))
    return json_response(agents.to_response(agent))


async def delete_identity(request: web.Request) -> web.Response:
    await in_session(request, agents.delete_agent, principal(request), request.match_info["uid"])
    return web.Response(status=204)
