"""The Oz API's own request state: who the bearer key belongs to, and how often its use is
recorded.  Everything else a handler needs is shared web plumbing (``bots/web.py``)."""

from __future__ import annotations

from aiohttp import web

from core.keys import UseThrottle
from core.models import Principal

KEY_USE = web.AppKey("key_use", UseThrottle)
PRINCIPAL = web.RequestKey("principal", Principal)


def principal(request: web.Request) -> Principal:
    """The authenticated caller, set by the auth middleware for every ``/api/v1`` route."""
    return request[PRINCIPAL]
