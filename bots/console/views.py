"""``/console``: the management pages, server-rendered (Jinja2 via ``aiohttp-jinja2``, every value
autoescaped), no front-end build and no CDN — a self-hosted gateway works air-gapped.

Here: sign-in with a personal API key (agent keys cannot), sign-out, the runs list (Personal /
All, filtered by status, source, creator and day, cursor pages), a run's page (prompt, origin,
state and status, a transcript that follows the run live, pull requests, file downloads, cancel,
follow-up) and the API keys page (create, shown once; revoke); the team's pages are in
``admin.py``.  Every page shows only the signed-in person's team; every form carries the
session's CSRF token.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import NoReturn
from urllib.parse import quote, urlencode

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy.orm import Session

from bots.console import sessions
from bots.console.sessions import ConsoleSession
from bots.streams import after_of, stream
from bots.web import (
    ASYNC_REDIS,
    QUEUE,
    SETTINGS,
    STORE,
    BrowserFlow,
    blocking,
    in_session,
    public,
    public_url,
    reading,
)
from core import accounts, artifacts, events, github_auth, github_oauth, keys, run_items, runs
from core.errors import ErrorCode, OzError
from core.identity import principal_of
from core.keys import authenticate, key_is_live
from core.models import Principal, RunSourceType, RunState
from core.models.domain import KEY_EXPIRIES
from core.models.wire import ACTIVE_STATES, FollowupRequest, ListRunsResponse, RunListQuery
from core.permissions import may_steer
from core.prices import dollars

PRE = "oz_console_pre"
"""The sign-in form's own CSRF token (double-submitted: a cookie and a field), so nobody can sign
a browser in to their account."""
STATUSES: dict[str, list[RunState]] = {
    "Working": sorted(ACTIVE_STATES),
    "Failed": [RunState.FAILED, RunState.ERROR],
    "Succeeded": [RunState.SUCCEEDED],
    "Cancelled": [RunState.CANCELLED],
}
"""The seeds' statuses, each the run states it stands for."""
SOURCES = [s.value for s in RunSourceType]


def status_of(state: RunState) -> str:
    return next(name for name, states in STATUSES.items() if state in states)


EXPIRIES = list(KEY_EXPIRIES)


def _secure(request: web.Request) -> bool:
    return public_url(request).startswith("https://")


async def signed_in(request: web.Request) -> ConsoleSession:
    """The session, or a redirect to sign in and come back here."""
    settings = request.app[SETTINGS]
    found = await sessions.current(settings, request.app[ASYNC_REDIS], request)
    if found is None or not await reading(request, _still_valid, found.principal):
        raise web.HTTPSeeOther(f"/console/sign-in?next={quote(request.path_qs, safe='')}")
    return found


def _still_valid(session: Session, who: Principal) -> bool:
    """A key's session ends when the key is revoked or expires; a GitHub sign-in's when its
    account is removed."""
    return key_is_live(session, who.key_uid) if who.key_uid else accounts.is_live(session, who.uid)


def checked(session: ConsoleSession, form: dict) -> None:
    if not sessions.csrf_ok(session, str(form.get("csrf") or "")):
        raise web.HTTPForbidden(text="the form is stale or not from this console; reload the page and try again")


def _next(target: str | None) -> str:
    """Only a console page of this gateway (never another site)."""
    return (
        target if target and target.startswith("/console/") and not target.startswith("/console//") else "/console/runs"
    )


@public
async def index(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/console/runs")


@public
async def sign_in_page(request: web.Request) -> web.Response:
    return _sign_in_form(request, _next(request.query.get("next")), None, 200)


@public
async def sign_in(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    target = _next(str(form.get("next") or ""))
    pre = request.cookies.get(PRE, "")
    if not pre or not secrets.compare_digest(pre, str(form.get("pre") or "")):
        return _sign_in_again(request, target, "The sign-in form expired; try again.")
    try:
        who = await reading(request, authenticate, str(form.get("api_key") or "").strip() or None)
    except OzError:
        return _sign_in_again(request, target, "That key is not valid (revoked, expired, or mistyped).")
    if not who.is_human:
        return _sign_in_again(request, target, "Agent keys cannot sign in; use your personal key.")
    token = await sessions.open_session(request.app[SETTINGS], request.app[ASYNC_REDIS], who)
    response = web.HTTPSeeOther(target)
    sessions.set_cookie(response, token, _secure(request))
    response.del_cookie(PRE, path="/console")
    raise response


def _sign_in_again(request: web.Request, target: str, error: str) -> web.Response:
    return _sign_in_form(request, target, error, 401)


def _sign_in_form(request: web.Request, target: str, error: str | None, status: int) -> web.Response:
    """The form, with a fresh double-submit token in a cookie and in the form."""
    token = secrets.token_urlsafe(24)
    settings = request.app[SETTINGS]
    github = bool(settings.github_oauth_client_id and settings.github_oauth_client_secret)
    context = {"pre": token, "next": target, "error": error, "github": github}
    response = aiohttp_jinja2.render_template("sign_in.html", request, context, status=status)
    response.set_cookie(
        PRE, token, max_age=1800, path="/console", httponly=True, samesite="Lax", secure=_secure(request)
    )
    return response


GITHUB_FLOW = BrowserFlow("console_github", "/console")


@public
async def sign_in_github(request: web.Request) -> web.StreamResponse:
    """Sign in with GitHub (when OAuth is configured): GitHub says who this is, and the account
    that authorized that GitHub login is the one signed in."""
    settings = request.app[SETTINGS]
    target = _next(request.query.get("next"))
    nonce = await GITHUB_FLOW.begin(settings, request.app[ASYNC_REDIS], target)
    redirect = f"{public_url(request)}/console/sign-in/github/callback"
    try:
        url = await blocking(request, github_oauth.login_url, settings, "", nonce, redirect)
    except OzError as error:
        return _sign_in_form(request, target, error.message, 404)
    raise GITHUB_FLOW.redirect(request, url, nonce)


@public
async def sign_in_github_callback(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    try:
        if "error" in request.query:
            raise OzError(ErrorCode.NOT_AUTHORIZED, request.query.get("error_description") or request.query["error"])
        _, nonce = github_oauth.read_state(settings, request.query.get("state"))
        target = _next(await GITHUB_FLOW.finish(request, settings, request.app[ASYNC_REDIS], nonce))
        grant = await blocking(request, github_oauth.exchange_code, settings, request.query.get("code") or "")
        login = await blocking(request, github_oauth.login_of, settings, grant.token)
        account = await reading(request, github_auth.account_for_login, login)
    except OzError as error:
        return _sign_in_again(request, "/console/runs", f"GitHub sign-in did not complete: {error.message}")
    if account is None:
        message = (
            f"No account here has authorized GitHub as {login}. Sign in with your personal key, then "
            "authorize GitHub (Team page) to sign in with GitHub from then on."
        )
        return _sign_in_again(request, target, message)
    token = await sessions.open_session(settings, request.app[ASYNC_REDIS], principal_of(account))
    response = web.HTTPSeeOther(target)
    sessions.set_cookie(response, token, _secure(request))
    GITHUB_FLOW.forget(response)
    raise response


@public
async def sign_out(request: web.Request) -> web.StreamResponse:
    session = await signed_in(request)
    checked(session, dict(await request.post()))
    await sessions.close_session(request.app[SETTINGS], request.app[ASYNC_REDIS], request)
    response = web.HTTPSeeOther("/console/sign-in")
    response.del_cookie(sessions.COOKIE, path="/console")
    raise response


def _query(who: Principal, params: dict[str, str], people: dict[str, str]) -> RunListQuery:
    """The runs list's filters as the API's query (``people``: the team's emails → uids)."""
    query: dict = {"limit": 25, "sort_by": "created_at"}
    if params.get("tab", "personal") == "personal":
        query["creator"] = who.uid
    elif params.get("creator") in people:
        query["creator"] = people[params["creator"]]
    if params.get("status") in STATUSES:
        query["state"] = STATUSES[params["status"]]
    if params.get("source") in SOURCES:
        query["source"] = params["source"]
    day = _day(params.get("day", ""))
    if day is not None:
        query["created_after"] = day - timedelta(microseconds=1)
        query["created_before"] = day + timedelta(days=1)
    if params.get("cursor"):
        query["cursor"] = params["cursor"]
    return RunListQuery.model_validate(query)


def _day(text: str) -> datetime | None:
    """A ``YYYY-MM-DD`` day (UTC), as a date field sends it; anything else is no filter."""
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None


def _runs_page(session: Session, who: Principal, params: dict[str, str]) -> tuple[ListRunsResponse, list[str]]:
    people = {a.email: a.uid for a in accounts.list_accounts(session, who.team_uid)}
    try:
        page = run_items.list_runs(session, who, _query(who, params, people))
    except OzError:  # a cursor from another filter: start over
        page = run_items.list_runs(session, who, _query(who, {**params, "cursor": ""}, people))
    return page, sorted(people)


@public
@aiohttp_jinja2.template("runs.html")
async def run_list(request: web.Request) -> dict:
    session = await signed_in(request)
    params = {k: request.query.get(k, "") for k in ("tab", "status", "source", "creator", "day", "cursor")}
    params["tab"] = params["tab"] if params["tab"] in ("personal", "all") else "personal"
    page, people = await reading(request, _runs_page, session.principal, params)
    base = {k: v for k, v in params.items() if v and k != "cursor"}
    following = urlencode(base | {"cursor": page.page_info.next_cursor}) if page.page_info.has_next_page else None
    return {
        "me": session.principal,
        "csrf": session.csrf,
        "runs": page.runs,
        "params": params,
        "statuses": list(STATUSES),
        "status_of": status_of,
        "cost_of": lambda item: dollars(run_items.cost_of(item)),
        "sources": SOURCES,
        "people": people,
        "next_page": following,
        "today": datetime.now(UTC).strftime("%Y-%m-%d"),
    }


def _run_page(session: Session, who: Principal, run_id: str, base_url: str, key: bytes) -> dict:
    run = runs.visible_run(session, who, run_id)
    item = run_items.render_item(session, run)
    downloads = []
    for artifact in item.artifacts or []:
        if artifact.artifact_type == "FILE":
            found = artifacts.artifact_response(session, who, artifact.data.artifact_uid, base_url, key)
            downloads.append((found.data.filename, found.data.download_url, found.data.size_bytes))
    pulls = run_items.pull_request_urls(item)
    steps = events.transcript(session, run.run_id)
    return {
        "run": item,
        "steps": steps,
        "pulls": pulls,
        "downloads": downloads,
        "can_cancel": runs.is_active(run) and may_steer(session, who, run),
        "live": runs.is_active(run),
    }


@public
@aiohttp_jinja2.template("run.html")
async def run_page(request: web.Request) -> dict:
    session = await signed_in(request)
    settings = request.app[SETTINGS]
    try:
        context = await reading(
            request,
            _run_page,
            session.principal,
            request.match_info["run_id"],
            public_url(request),
            settings.signing_key(),
        )
    except OzError as error:
        if error.code == ErrorCode.RESOURCE_NOT_FOUND:
            raise web.HTTPNotFound(text="No such run in your team.") from None
        raise
    return context | {"me": session.principal, "csrf": session.csrf, "notice": request.query.get("notice")}


async def _steer(
    request: web.Request, session: ConsoleSession, action: Callable[..., object], done: str, *args: object
) -> NoReturn:
    """A form on a run's page (cancel, follow up): do it as the signed-in person, then back to
    the page saying how it went (a refusal's own words)."""
    run_id = request.match_info["run_id"]
    try:
        await blocking(request, action, request.app[STORE], request.app[QUEUE], session.principal, run_id, *args)
        notice = done
    except OzError as error:
        if error.code == ErrorCode.RESOURCE_NOT_FOUND:
            raise web.HTTPNotFound(text="No such run in your team.") from None
        notice = error.message
    raise web.HTTPSeeOther(f"/console/runs/{quote(run_id)}?{urlencode({'notice': notice})}")


@public
async def cancel(request: web.Request) -> web.StreamResponse:
    session = await signed_in(request)
    checked(session, dict(await request.post()))
    await _steer(request, session, runs.cancel, "Cancelled.")


@public
async def run_events(request: web.Request) -> web.StreamResponse:
    """The run's transcript, live (the API's stream, for the signed-in person): the run page
    follows it without reloading."""
    session = await signed_in(request)
    return await stream(request, session.principal, request.match_info["run_id"], after_of(request))


@public
async def followup(request: web.Request) -> web.StreamResponse:
    session = await signed_in(request)
    form = dict(await request.post())
    checked(session, form)
    message = str(form.get("message") or "").strip()
    if not message:
        run_id = quote(request.match_info["run_id"])
        raise web.HTTPSeeOther(f"/console/runs/{run_id}?{urlencode({'notice': 'Write the follow-up first.'})}")
    await _steer(request, session, runs.followup, "Follow-up sent.", FollowupRequest(message=message))


@public
@aiohttp_jinja2.template("keys.html")
async def key_list(request: web.Request) -> dict:
    session = await signed_in(request)
    found = await reading(request, keys.list_keys, session.principal)
    return {"me": session.principal, "csrf": session.csrf, "keys": found, "created": None, "expiries": EXPIRIES}


@public
async def key_create(request: web.Request) -> web.Response:
    """A new personal key, shown once on the page that answers the form (never again)."""
    session = await signed_in(request)
    form = dict(await request.post())
    checked(session, form)
    expires = str(form.get("expires") or "90d")
    try:
        record, raw = await in_session(
            request,
            _create_key,
            session.principal,
            str(form.get("name") or ""),
            expires if expires in EXPIRIES else "90d",
        )
        created, error = (record.name, raw), None
    except OzError as failure:
        created, error = None, failure.message
    found = await reading(request, keys.list_keys, session.principal)
    context = {"me": session.principal, "csrf": session.csrf, "keys": found, "created": created, "error": error}
    response = aiohttp_jinja2.render_template("keys.html", request, context | {"expiries": EXPIRIES})
    response.headers["Cache-Control"] = "no-store"  # the raw key is on this page
    return response


def _create_key(session: Session, who: Principal, name: str, expires: str) -> tuple:
    return keys.create_key(session, accounts.account_by_email(session, who.email or ""), name, expires=expires)


@public
async def key_revoke(request: web.Request) -> web.StreamResponse:
    session = await signed_in(request)
    checked(session, dict(await request.post()))
    try:
        await in_session(request, keys.revoke, session.principal, request.match_info["uid"])
    except OzError as error:
        if error.code == ErrorCode.RESOURCE_NOT_FOUND:
            raise web.HTTPNotFound(text="No such key in your team.") from None
        raise web.HTTPForbidden(text=error.message) from None
    raise web.HTTPSeeOther("/console/keys")
