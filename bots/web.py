"""Web plumbing every front door's browser pages share (sign-in forms, OAuth callbacks, link
confirmations): one plain, self-contained page shape with everything untrusted escaped."""

from __future__ import annotations

import html
import secrets

from aiohttp import web
from redis.asyncio import Redis

from core.errors import ErrorCode, OzError
from core.settings import Settings


def page(title: str, body: str, status: int = 200, form: str = "") -> web.Response:
    """``form`` is markup the caller built (its values escaped); ``title`` and ``body`` are text."""
    document = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title></head>"
        "<body style='font-family:sans-serif;max-width:40em;margin:4em auto;padding:0 1em'>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(body)}</p>{form}</body></html>"
    )
    return web.Response(text=document, content_type="text/html", status=status)


def public_url(request: web.Request) -> str:
    """Where browsers reach the gateway: ``OZGW_PUBLIC_URL``, else the address this request came to."""
    from bots.api.context import SETTINGS  # the app's settings key (bots/api holds the app's context)

    return (request.app[SETTINGS].public_url or str(request.url.origin())).rstrip("/")


class BrowserFlow:
    """Binds an OAuth round trip to the browser that started it: a single-use nonce kept in
    Redis (with what the flow is for) and in an ``HttpOnly`` cookie.  The provider's callback
    is accepted only with the same nonce in the signed ``state`` *and* the cookie, so a callback
    URL opened in someone else's browser cannot finish the flow for them (or the reverse)."""

    def __init__(self, name: str, path: str, ttl_seconds: int = 15 * 60) -> None:
        self.cookie, self.path, self.ttl = f"oz_{name}", path, ttl_seconds
        self.name = name

    def _key(self, settings: Settings, nonce: str) -> str:
        return f"{settings.redis_prefix}{self.name}:{nonce}"

    async def begin(self, settings: Settings, redis: Redis, value: str) -> str:
        nonce = secrets.token_urlsafe(24)
        await redis.set(self._key(settings, nonce), value, ex=self.ttl)
        return nonce

    def redirect(self, request: web.Request, url: str, nonce: str) -> web.HTTPSeeOther:
        response = web.HTTPSeeOther(url)
        response.set_cookie(
            self.cookie,
            nonce,
            max_age=self.ttl,
            path=self.path,
            httponly=True,
            samesite="Lax",
            secure=public_url(request).startswith("https://"),
        )
        return response

    async def finish(self, request: web.Request, settings: Settings, redis: Redis, nonce: str) -> str:
        """What ``begin`` kept, once; a foreign browser or a replay is refused."""
        if not secrets.compare_digest(request.cookies.get(self.cookie, ""), nonce):
            raise OzError(
                ErrorCode.NOT_AUTHORIZED,
                "finish in the browser you started in (this one did not start the authorization); start again",
            )
        value = await redis.getdel(self._key(settings, nonce))
        if value is None:
            raise OzError(ErrorCode.NOT_AUTHORIZED, "this authorization link was already used; start again")
        return value.decode() if isinstance(value, bytes) else value

    def forget(self, response: web.StreamResponse) -> None:
        response.del_cookie(self.cookie, path=self.path)
