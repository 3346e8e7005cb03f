"""``/link/slack``: a Slack user proves who they are on the gateway, once.

They arrive from the "Link your account" button with a signed, expiring token naming their
parked request; they sign in with their personal API key; the link is stored and the
request they made runs right away — they are not asked to repeat it.
"""

from __future__ import annotations

import asyncio
import html

import structlog
from aiohttp import web

from bots.slack.app import SLACK_BOT
from bots.slack.handler import LINK_PURPOSE
from bots.slack.thread import SlackMessage
from bots.web import SETTINGS, in_session, page, public, reading
from core import identity
from core.errors import ErrorCode, OzError
from core.keys import authenticate
from core.signing import read_token

log = structlog.get_logger(__name__)
RESUMED = web.AppKey("slack_resumed_requests", set)


def _form(token: str) -> str:
    return (
        "<form method='post' action='/link/slack'>"
        f"<input type='hidden' name='token' value='{html.escape(token, quote=True)}'>"
        "<label>Your personal API key <input type='password' name='api_key' autocomplete='off' "
        "placeholder='wk-…' size='40'></label> <button type='submit'>Link my account</button></form>"
        "<p><small>Create one with <code>oz-gateway key create --email you@example.com --name slack</code>. "
        "The key is only checked, never stored with the link.</small></p>"
    )


def _request_uid(request: web.Request, token: str | None) -> str:
    return read_token(request.app[SETTINGS].signing_key(), LINK_PURPOSE, token)["r"]


async def _names(app: web.Application, team: str, user: str, enterprise: str | None) -> tuple[str, str]:
    """The Slack person's name and their workspace's, for a page a person reads (ids otherwise)."""
    try:
        front = app[SLACK_BOT].front
        client = await front.reporter.clients.for_team(team, enterprise)
        workspace = (await client.auth_test()).get("team") or team
        return await front.names.of(client, team, user), workspace
    except Exception:  # a page must render even when Slack cannot be asked
        log.info("slack.link_names_unavailable", team=team, user=user)
        return user, team


@public
async def show(request: web.Request) -> web.Response:
    token = request.query.get("token")
    try:
        parked = await reading(request, identity.open_request, _request_uid(request, token))
    except OzError as error:
        return page("This link cannot be used", error.message, error.status)
    person, workspace = await _names(
        request.app, parked.external_team, parked.external_user, parked.payload.get("enterprise")
    )
    return page(
        "Link your Slack account",
        f"You are letting Slack user {person} (workspace {workspace}) act as your account on this gateway: "
        "every request they make in Slack will run as you, with your GitHub access. "
        "Continue only if that Slack user is you.",
        form=_form(token or ""),
    )


@public
async def submit(request: web.Request) -> web.Response:
    form = await request.post()
    token = str(form.get("token") or "")
    try:
        request_uid = _request_uid(request, token)
        who = await reading(request, authenticate, str(form.get("api_key") or "").strip() or None)
        if not who.is_human:
            raise OzError(ErrorCode.NOT_AUTHORIZED, "an agent key belongs to no person; use your personal API key")
        parked = await in_session(request, identity.complete_request, request_uid, who.uid)
    except OzError as error:
        return page("Your account was not linked", error.message, error.status)
    log.info("slack.linked", team=parked.external_team, user=parked.external_user, account=who.uid)
    _resume(request.app, SlackMessage(**parked.payload))
    person, workspace = await _names(
        request.app, parked.external_team, parked.external_user, parked.payload.get("enterprise")
    )
    return page(
        "Your Slack account is linked",
        f"Slack user {person} (workspace {workspace}) now acts as {who.email}. Your request is starting in Slack now.",
    )


def _resume(app: web.Application, message: SlackMessage) -> None:
    """Run the parked request in the background, as if it had just been made."""

    async def resume() -> None:
        front = app[SLACK_BOT].front
        client = await front.reporter.clients.for_team(message.team, message.enterprise)
        bot_user_id = (await client.auth_test()).get("user_id")
        try:
            await front.handle_message(message, client, bot_user_id)
        except Exception:
            log.exception("slack.resume_failed", team=message.team, channel=message.channel)

    task = asyncio.get_running_loop().create_task(resume())
    tasks = app[RESUMED]
    tasks.add(task)
    task.add_done_callback(tasks.discard)
