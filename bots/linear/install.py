"""``/linear/install``: a team admin installs the Linear app in a workspace (OAuth, ``actor=app``).

The admin proves who they are with their personal API key (checked, never stored); the flow is
bound to their browser (``bots.web.BrowserFlow``), and Linear's callback brings a code that is
exchanged for the workspace's own access and refresh tokens.  With the new token the gateway
asks which workspace it is and who the app is there (``viewer``: the app user it must never act
on), and keeps all of it encrypted (``core/linear_tokens.py``).  From then on deliveries from that
workspace (their ``organizationId``) are answered with its token, renewed by refresh.

Only an admin may install: a workspace installed here maps its people to gateway accounts by
email, so which workspaces are trusted is the team's decision, not any Linear user's.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

import structlog
from aiohttp import web

from bots.linear import queries
from bots.linear.client import LinearClient, LinearError
from bots.linear.tokens import APP_SCOPES, GrantRefused, token_request
from bots.web import ASYNC_REDIS, SETTINGS, VAULT, BrowserFlow, in_session, page, public, public_url, reading
from core import linear_tokens
from core.errors import ErrorCode, OzError
from core.keys import authenticate
from core.linear_tokens import Workspace
from core.permissions import require_admin
from core.settings import Settings
from core.signing import read_token, sign_token
from core.store import utcnow

log = structlog.get_logger(__name__)
FLOW = BrowserFlow("linear_install", "/linear")
STATE_PURPOSE = "linear-install-state"
STATE_TTL = timedelta(minutes=15)
SIGN_IN = (
    "<form method='post' action='/linear/install'>"
    "<label>Your personal API key (a team admin's) <input type='password' name='api_key' autocomplete='off' "
    "placeholder='wk-…' size='40'></label> <button type='submit'>Continue to Linear</button></form>"
    "<p><small>It is only checked, never stored. Linear then asks a workspace admin to approve the app.</small></p>"
)


def _configured(settings: Settings) -> None:
    if not (settings.linear_client_id and settings.linear_client_secret):
        raise OzError(
            ErrorCode.INTEGRATION_NOT_CONFIGURED,
            "installing in Linear workspaces needs the app's OAuth credentials (OZGW_LINEAR_CLIENT_ID/_SECRET)",
        )


def _redirect_uri(request: web.Request) -> str:
    return f"{public_url(request)}/linear/oauth/callback"


@public
async def show(request: web.Request) -> web.Response:
    try:
        _configured(request.app[SETTINGS])
    except OzError as error:
        return page("Linear install is not set up", error.message, 404)
    return page(
        "Install Oz in a Linear workspace",
        "Sign in with a team admin's personal API key; Linear then asks which workspace, and its admin approves.",
        form=SIGN_IN,
    )


@public
async def start(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    form = await request.post()
    try:
        _configured(settings)
        who = await reading(request, authenticate, str(form.get("api_key") or "").strip() or None)
        await reading(request, require_admin, who, "install the Linear app in a workspace")
        nonce = await FLOW.begin(settings, request.app[ASYNC_REDIS], who.uid)
    except OzError as error:
        return page("Cannot start the Linear install", error.message, error.status)
    state = sign_token(settings.signing_key(), STATE_PURPOSE, {"n": nonce}, STATE_TTL)
    query = {
        "client_id": settings.linear_client_id,
        "redirect_uri": _redirect_uri(request),
        "response_type": "code",
        "scope": APP_SCOPES,
        "actor": "app",
        "state": state,
        "prompt": "consent",  # lets an admin pick another workspace than the last one
    }
    raise FLOW.redirect(request, f"{settings.linear_authorize_url}?{urlencode(query)}", nonce)


async def _which_workspace(settings: Settings, token: str) -> Workspace:
    client = LinearClient(settings.linear_api_url, token, settings.outbound_timeout_seconds)
    try:
        found = await client.execute(queries.INSTALLED)
    finally:
        await client.close()
    organization, viewer = found["organization"], found["viewer"]
    return Workspace(organization["id"], organization["name"], organization.get("urlKey"), viewer["id"], None)


@public
async def callback(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    if "error" in request.query:
        reason = request.query.get("error_description") or request.query["error"]
        return page("The Linear install was not completed", reason, 400)
    try:
        _configured(settings)
        nonce = read_token(settings.signing_key(), STATE_PURPOSE, request.query.get("state"))["n"]
        admin = await FLOW.finish(request, settings, request.app[ASYNC_REDIS], nonce)
        form = {"grant_type": "authorization_code", "code": request.query.get("code") or ""}
        grant = await token_request(settings, form | {"redirect_uri": _redirect_uri(request)})
        workspace = await _which_workspace(settings, grant.token)
        expires_at = utcnow() + grant.lifetime
        await in_session(
            request, linear_tokens.install, request.app[VAULT], workspace, grant.token, grant.refresh_token, expires_at
        )
    except OzError as error:
        return page("The Linear install failed", error.message, error.status)
    except GrantRefused as error:
        return page("The Linear install failed", f"Linear did not grant a token ({error}); start again", 502)
    except (LinearError, KeyError, TypeError) as error:
        return page("The Linear install failed", f"Linear did not say which workspace ({error}); start again", 502)
    log.info("linear.installed", organization=workspace.organization_id, by=admin)
    response = page(
        f"Oz is installed in {workspace.name}",
        f"Mention or delegate to the app in {workspace.name} to start runs; people are matched to gateway "
        "accounts by email. `oz-gateway linear workspaces` lists the workspaces. You can close this tab.",
    )
    FLOW.forget(response)
    return response
