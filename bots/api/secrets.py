"""``/api/v1/secrets``: managed secrets by name (values go in, never out)."""

from __future__ import annotations

from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from bots.api.context import principal
from bots.api.middleware import read_json
from bots.web import VAULT, in_session, reading
from core import managed_secrets
from core.errors import invalid


class SecretCreate(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=128)]
    value: Annotated[str, Field(min_length=1)]
    scope: Literal["team", "personal"] = "team"


async def list_secrets(request: web.Request) -> web.Response:
    found = await reading(request, managed_secrets.list_secrets, principal(request))
    return web.json_response({"secrets": [{**s, "updated_at": s["updated_at"].isoformat()} for s in found]})


async def put_secret(request: web.Request) -> web.Response:
    body = SecretCreate.model_validate(await read_json(request))
    await in_session(
        request, managed_secrets.put_secret, request.app[VAULT], principal(request), body.name, body.value, body.scope
    )
    return web.json_response({"name": body.name, "scope": body.scope}, status=201)


async def delete_secret(request: web.Request) -> web.Response:
    scope = request.query.get("scope", "team")
    if scope not in ("team", "personal"):
        raise invalid("scope must be team or personal")
    await in_session(request, managed_secrets.delete_secret, principal(request), request.match_info["name"], scope)
    return web.Response(status=204)
