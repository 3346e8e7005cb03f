"""Console sign-in sessions, kept server-side in Redis: the browser holds only a random id in an
``HttpOnly``, ``SameSite=Lax`` cookie (``Secure`` behind https), stored here as its SHA-256, so
a leaked Redis dump signs nobody in.  Each session carries its person and a CSRF token every
form must echo; it ends at sign-out or after ``LIFETIME``."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass

from aiohttp import web
from redis.asyncio import Redis

from core.models import Principal
from core.settings import Settings

COOKIE = "oz_console"
LIFETIME = 12 * 3600


@dataclass(frozen=True)
class ConsoleSession:
    principal: Principal
    csrf: str


def _key(settings: Settings, token: str) -> str:
    return f"{settings.redis_prefix}console:{hashlib.sha256(token.encode()).hexdigest()}"


async def open_session(settings: Settings, redis: Redis, principal: Principal) -> str:
    """A new session for ``principal``; returns the cookie's value."""
    token = secrets.token_urlsafe(32)
    body = {"principal": principal.model_dump(mode="json"), "csrf": secrets.token_urlsafe(24)}
    await redis.set(_key(settings, token), json.dumps(body), ex=LIFETIME)
    return token


async def current(settings: Settings, redis: Redis, request: web.Request) -> ConsoleSession | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    raw = await redis.get(_key(settings, token))
    if raw is None:
        return None
    body = json.loads(raw)
    return ConsoleSession(Principal.model_validate(body["principal"]), body["csrf"])


async def close_session(settings: Settings, redis: Redis, request: web.Request) -> None:
    token = request.cookies.get(COOKIE)
    if token:
        await redis.delete(_key(settings, token))


def set_cookie(response: web.StreamResponse, token: str, secure: bool) -> None:
    response.set_cookie(COOKIE, token, max_age=LIFETIME, path="/console", httponly=True, samesite="Lax", secure=secure)


def csrf_ok(session: ConsoleSession, given: str | None) -> bool:
    return given is not None and secrets.compare_digest(session.csrf, given)
