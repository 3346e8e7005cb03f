"""``/auth/github``: a person authorizes the gateway on GitHub (OAuth web flow).

Whoever opens the page proves who they are first: with their personal API key, or with a
signed link that only they were given (single-use, 30 minutes), after a page that says plainly
which account GitHub is about to be connected to.  Starting the flow sets a nonce cookie in
that browser; GitHub's callback is accepted only with the same nonce in the signed ``state``
*and* in the cookie, so a link or a callback URL opened in someone else's browser cannot bind
their GitHub account to this person (or the reverse).
"""

from __future__ import annotations

import html

from aiohttp import web
from redis.asyncio import Redis
from sqlalchemy.orm import Session

from bots.web import ASYNC_REDIS, SETTINGS, VAULT, BrowserFlow, blocking, in_session, page, public, public_url, reading
from core import github_oauth
from core.errors import ErrorCode, OzError
from core.github_auth import save_authorization
from core.keys import authenticate
from core.store.tables import AccountRow

FLOW = BrowserFlow("github_oauth", "/auth/github")


def _key(request: web.Request, kind: str, value: str) -> str:
    return f"{request.app[SETTINGS].redis_prefix}gh-{kind}:{value}"


SIGN_IN = (
    "<form method='post' action='/auth/github'>"
    "<label>Your personal API key <input type='password' name='api_key' autocomplete='off' placeholder='wk-…' "
    "size='40'></label> <button type='submit'>Continue to GitHub</button></form>"
    "<p><small>Create one with <code>oz-gateway key create --email you@example.com --name github</code>. "
    "It is only checked, never stored.</small></p>"
)


def _confirm(token: str) -> str:
    return (
        "<form method='post' action='/auth/github'>"
        f"<input type='hidden' name='token' value='{html.escape(token, quote=True)}'>"
        "<button type='submit'>Yes, connect my GitHub account</button></form>"
    )


def _email_of(session: Session, account_uid: str) -> str:
    row = session.get(AccountRow, account_uid)
    if row is None:
        raise OzError(ErrorCode.NOT_AUTHORIZED, "the link is invalid or has expired; ask for a new one")
    return row.email


@public
async def show(request: web.Request) -> web.Response:
    """The sign-in page, or — for a signed link — the confirmation naming the account."""
    token = request.query.get("token")
    if not token:
        return page(
            "Connect GitHub",
            "Sign in with your personal API key; runs you start will then use your GitHub account.",
            form=SIGN_IN,
        )
    try:
        account_uid, _jti = github_oauth.read_link(request.app[SETTINGS], token)
        email = await reading(request, _email_of, account_uid)
    except OzError as error:
        return page("This link cannot be used", error.message, error.status)
    return page(
        f"Connect GitHub to {email}?",
        f"Runs started by {email} will act on GitHub as the GitHub account you sign in with next. "
        f"Continue only if you are {email}; otherwise close this page.",
        form=_confirm(token),
    )


@public
async def start(request: web.Request) -> web.StreamResponse:
    """The form's POST: who this is (link or key), a nonce for this browser, then GitHub."""
    settings = request.app[SETTINGS]
    form = await request.post()
    redis: Redis = request.app[ASYNC_REDIS]
    try:
        token = str(form.get("token") or "")
        if token:
            account_uid, jti = github_oauth.read_link(settings, token)
            if not await redis.set(
                _key(request, "link", jti), "1", nx=True, ex=int(github_oauth.LINK_TTL.total_seconds())
            ):
                raise OzError(ErrorCode.NOT_AUTHORIZED, "this link was already used; ask for a new one")
        else:
            who = await reading(request, authenticate, str(form.get("api_key") or "").strip() or None)
            if not who.is_human:
                raise OzError(ErrorCode.NOT_AUTHORIZED, "agent keys have no GitHub account to authorize")
            account_uid = who.uid
        nonce = await FLOW.begin(settings, redis, account_uid)
        redirect = f"{public_url(request)}/auth/github/callback"
        url = await blocking(request, github_oauth.login_url, settings, account_uid, nonce, redirect)
    except OzError as error:
        return page("Cannot start GitHub authorization", error.message, error.status)
    raise FLOW.redirect(request, url, nonce)


@public
async def callback(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    if "error" in request.query:
        return page(
            "GitHub authorization was not completed",
            request.query.get("error_description") or request.query["error"],
            400,
        )
    try:
        account_uid, nonce = github_oauth.read_state(settings, request.query.get("state"))
        await FLOW.finish(request, settings, request.app[ASYNC_REDIS], nonce)
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
        return page("GitHub authorization failed", error.message, error.status)
    response = page("GitHub is connected", f"Runs you start will use GitHub as {login}. You can close this tab.")
    FLOW.forget(response)
    return response
