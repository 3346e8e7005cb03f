"""``/api/v1/keys``: the caller's API keys (an admin: the team's) by prefix only, and revocation
(our extension, documented in the OpenAPI document)."""

from __future__ import annotations

from aiohttp import web

from bots.api.context import principal
from bots.web import in_session, reading
from core import keys
from core.models import ApiKey


def _shown(key: ApiKey) -> dict:
    return key.model_dump(mode="json") | {"prefix": f"{key.prefix}…"}


async def list_keys(request: web.Request) -> web.Response:
    found = await reading(request, keys.list_keys, principal(request))
    return web.json_response({"keys": [_shown(k) for k in found]})


async def revoke_key(request: web.Request) -> web.Response:
    revoked = await in_session(request, keys.revoke, principal(request), request.match_info["uid"])
    return web.json_response(_shown(revoked))
