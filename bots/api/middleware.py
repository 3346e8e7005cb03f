"""The Oz API's bearer-key authentication, and its JSON bodies.

Every error leaves as ``application/problem+json`` (``bots.web.problem_middleware``) with the
catalog's fields and an ``x-should-retry`` header, which the Oz SDK obeys instead of guessing
from the status.
"""

from __future__ import annotations

import json

from aiohttp import web

from bots.api.context import KEY_USE, PRINCIPAL
from bots.web import Handler, bearer_token, in_session, is_public, reading
from core.errors import ErrorCode, OzError
from core.keys import authenticate, record_use


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/api/v1/") and not is_public(request.match_info.handler):
        who = request[PRINCIPAL] = await reading(request, authenticate, bearer_token(request))
        if who.key_uid and request.app[KEY_USE].due(who.key_uid):
            await in_session(request, record_use, who.key_uid)
    return await handler(request)


async def read_json(request: web.Request) -> dict:
    """The JSON object body, or ``invalid_request`` saying what is wrong with it."""
    if not request.can_read_body:
        return {}
    raw = await request.read()
    try:  # JSON is UTF-8 (RFC 8259), whatever charset the header claims
        body = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise OzError(ErrorCode.INVALID_REQUEST, "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise OzError(ErrorCode.INVALID_REQUEST, "the request body must be a JSON object")
    return body
