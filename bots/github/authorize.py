"""``/auth/github``: a person authorizes the gateway on GitHub (OAuth web flow).

They arrive with a signed link (from an ``external_authentication_required`` error, a Slack
button, or ``oz-gateway github authorize``) or with their personal API key; GitHub sends
them back to ``/auth/github/callback`` with a code and our signed, single-use ``state``.
"""

from __future__ import annotations

import html
import secrets

from aiohttp import web
from redis.asyncio import Redis

from bots.api.context import ASYNC_REDIS, SETTINGS, VAULT, blocking, in_session, public, reading
from bots.api.middleware import bearer_token
from core import github_oauth
from core.errors import ErrorCode, OzError
from core.github_auth import save_authorization
from core.keys import authenticate

NONCE_TTL_SECONDS = 15 * 60


def _page(title: str, body: str, status: int = 200) -> web.Response:
    document = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body style='font-family:sans-serif;max-width:40em;margin:4em auto'>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(body)}</p></body></html>"
    )
    return web.Response(text=document, content_type="text/html", status=status)


def _public_url(request: web.Request) -> str:
    return (request.app[SETTINGS].public_url or str(request.url.origin())).rstrip("/")


@public
async def start(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    token = request.query.get("token")
    try:
        if token:
            account_uid = github_oauth.account_of_link(settings, token)
        else:
            who = await reading(request, authenticate, bearer_token(request))
            if not who.is_human:
                raise OzError(ErrorCode.NOT_AUTHORIZED, "agent keys have no GitHub account to authorize")
            account_uid = who.uid
        nonce = secrets.token_urlsafe(16)
        await request.app[ASYNC_REDIS].set(f"oz:gh-oauth:{nonce}", account_uid, ex=NONCE_TTL_SECONDS)
        url = await blocking(
            request,
            github_oauth.login_url,
            settings,
            account_uid,
            nonce,
            f"{_public_url(request)}/auth/github/callback",
        )
    except OzError as error:
        return _page("Cannot start GitHub authorization", error.message, error.status)
    raise web.HTTPFound(url)


@public
async def callback(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    if "error" in request.query:
        return _page(
            "GitHub authorization was not completed",
            request.query.get("error_description") or request.query["error"],
            400,
        )
    try:
        account_uid, nonce = github_oauth.read_state(settings, request.query.get("state"))
        redis: Redis = request.app[ASYNC_REDIS]
        if await redis.getdel(f"oz:gh-oauth:{nonce}") is None:  # single use: a replayed state is refused
            raise OzError(ErrorCode.NOT_AUTHORIZED, "this authorization link was already used; start again")
        code = request.query.get("code") or ""
        grant = await blocking(request, github_oauth.exchange_code, settings, code)
        login = await blocking(request, github_oauth.login_of, settings, grant.token)
        await in_session(
            request,
            save_authorization,
            request.app[VAULT],
            account_uid,
            login,
            grant.token,
            grant.refresh_token,
            grant.expires_at,
        )
    except OzError as error:
        return _page("GitHub authorization failed", error.message, error.status)
    return _page("GitHub is connected", f"Runs you start will use GitHub as {login}. You can close this tab.")
