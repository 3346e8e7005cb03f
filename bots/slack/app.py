"""The Slack front door: a slack-bolt ``AsyncApp`` behind the gateway's aiohttp server.

bolt verifies signatures, answers the URL-verification handshake, drops the app's own
events and acknowledges at once; our listeners run after that acknowledgement
(``process_before_response=False``), so Slack gets its answer in milliseconds and the slow
work — identity, thread, run — happens in the background.  The same app serves the HTTP
Events API (``/slack/events``), Socket Mode (when an app-level token is configured), and
the OAuth install pages for several workspaces.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, model_validator
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.clients import SlackClients, web_client
from bots.slack.handler import SlackFrontDoor
from bots.slack.installations import StoreInstallations, StoreOAuthStates
from bots.slack.reporter import SlackReporter
from bots.slack.thread import Names, SlackMessage
from core import inbox
from core.errors import ErrorCode, OzError
from core.offload import off_loop
from core.queue import RunQueue
from core.settings import Settings
from core.store import Store
from core.vault import Vault

log = structlog.get_logger(__name__)
BOT_SCOPES = [
    "app_mentions:read",
    "assistant:write",
    "channels:history",
    "channels:read",
    "chat:write",
    "files:read",
    "groups:history",
    "groups:read",
    "im:history",
    "im:write",
    "reactions:read",
    "reactions:write",
    "users:read",
    "users:read.email",
]
WORK_IN_FLIGHT = 4
INBOX_KEY = "oz_inbox_key"
REFUSAL = "Something went wrong on our side (`internal_error`); mention me again to retry."


def inbox_key(body: dict) -> str | None:
    """What makes a delivery the same request (``core/inbox.py``): a person's message — the same
    one over HTTP and Socket Mode, or as both ``app_mention`` and ``message`` — or a reaction's
    event id.  Events we ignore are not kept."""
    if body.get("type") != "event_callback":
        return None
    event = body.get("event") or {}
    if is_person_message(event):
        return f"slack:message:{body.get('team_id')}:{event.get('channel')}:{event.get('ts')}"
    if event.get("type") == "reaction_added" and body.get("event_id"):
        return f"slack:event:{body.get('team_id')}:{body['event_id']}"
    return None


def is_person_message(event: dict) -> bool:
    if event.get("bot_id") or event.get("subtype") or not event.get("user"):
        return False
    return event.get("type") == "app_mention" or (event.get("type") == "message" and event.get("channel_type") == "im")


class KeepDeliveries(AsyncMiddleware):
    """Keeps each delivery in the inbox before it is answered (``core/inbox.py``): a duplicate is
    answered with a plain 200 and goes no further; a store that cannot keep it fails the answer,
    so Slack sends the delivery again.  HTTP deliveries are kept before bolt runs (see
    :func:`events`); Socket Mode ones here, as bolt's first step of ours."""

    name = "KeepDeliveries"

    def __init__(self, store: Store, executor: Executor, lease: timedelta) -> None:
        self.store, self.executor, self.lease = store, executor, lease

    async def keep(self, req: AsyncBoltRequest) -> bool:
        """``False`` for a duplicate; otherwise the delivery is kept and its key in its context."""
        if INBOX_KEY in req.context:
            return True
        key = inbox_key(req.body)
        kept = key is None or await off_loop(
            self.executor, inbox.accept, self.store, key, "slack", req.body, self.lease
        )
        if not kept:
            log.info("slack.duplicate_delivery", key=key, retry=req.headers.get("x-slack-retry-num"))
            return False
        req.context[INBOX_KEY] = key
        return True

    async def async_process(
        self, *, req: AsyncBoltRequest, resp: BoltResponse, next: Callable[[], Awaitable[BoltResponse]]
    ) -> BoltResponse:
        if not await self.keep(req):
            return BoltResponse(status=200, body="")
        return await next()


class Handling:
    """What a kept delivery does once answered — for bolt's listeners, and again for a delivery
    whose handler vanished (:meth:`take_up`)."""

    def __init__(self, front: SlackFrontDoor) -> None:
        self.front = front
        # The work after the ack shares the event loop with the acks: a burst of deliveries must
        # not start all its slow work at once, or the next deliveries wait behind it (Slack's 3 s).
        self.busy = asyncio.Semaphore(WORK_IN_FLIGHT)

    async def handle(self, body: dict, client: AsyncWebClient, bot_user_id: str | None, key: str | None) -> None:
        event = body.get("event") or {}
        await inbox.handle_kept(
            self.front.executor,
            self.front.store,
            key,
            self._dispatch(body, event, client, bot_user_id),
            failure="slack.delivery_failed",
            team=body.get("team_id"),
            channel=event.get("channel"),
        )

    async def _dispatch(self, body: dict, event: dict, client: AsyncWebClient, bot_user_id: str | None) -> None:
        front = self.front
        async with self.busy:
            if event.get("type") == "reaction_added":
                await front.handle_reaction(body["team_id"], event, client)
            elif is_person_message(event):
                message = SlackMessage.from_event(body["team_id"], event, body.get("enterprise_id"))
                try:
                    await front.handle_message(message, client, bot_user_id)
                except Exception:
                    await client.chat_postEphemeral(
                        channel=message.channel, user=message.user, text=REFUSAL, thread_ts=message.thread_ts
                    )
                    raise

    async def take_up(self, key: str, body: dict) -> None:
        """A kept delivery nobody finished (its web process died after the answer)."""
        client = await self.front.reporter.clients.for_team(body["team_id"], body.get("enterprise_id"))
        bot_user_id = next((a.get("user_id") for a in body.get("authorizations") or [] if a.get("is_bot")), None)
        await self.handle(body, client, bot_user_id, key)


@dataclass
class SlackBot:
    bolt: AsyncApp
    front: SlackFrontDoor
    handling: Handling
    keeper: KeepDeliveries
    socket: AsyncSocketModeHandler | None = None
    verifier: SignatureVerifier | None = None
    """Slack's signature check, made before bolt sees a delivery (see :func:`events`)."""


def installations_of(settings: Settings, store: Store, vault: Vault) -> StoreInstallations | None:
    if settings.slack_client_id and settings.slack_client_secret:
        return StoreInstallations(store, vault, settings.slack_client_id)
    return None


def build_reporter(
    settings: Settings, store: Store, vault: Vault, session: aiohttp.ClientSession | None = None
) -> SlackReporter:
    """The reporter alone, for the ``reporter`` process."""
    clients = SlackClients(settings, installations_of(settings, store, vault), session)
    return SlackReporter(clients, store, settings)


def build_bot(
    settings: Settings,
    store: Store,
    queue: RunQueue | None,
    executor: Executor,
    vault: Vault,
    session: aiohttp.ClientSession | None = None,
    *,
    ack_executor: Executor | None = None,
) -> SlackBot:
    installations = installations_of(settings, store, vault)
    oauth_flow = None
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token and not installations else None
    if installations is not None:
        oauth_flow = AsyncOAuthFlow(
            client=web_client(settings, session=session),
            settings=AsyncOAuthSettings(
                client_id=settings.slack_client_id,
                client_secret=settings.slack_client_secret.get_secret_value() if settings.slack_client_secret else "",
                scopes=BOT_SCOPES,
                installation_store=installations,
                state_store=StoreOAuthStates(store),
                install_path="/slack/install",
                redirect_uri_path="/slack/oauth_redirect",
                redirect_uri=f"{settings.effective_public_url}/slack/oauth_redirect",
            ),
        )
    signing_secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
    bolt = AsyncApp(
        signing_secret=signing_secret,
        client=web_client(settings, token, session),  # per-workspace tokens are set on copies of it
        installation_store=installations,
        oauth_flow=oauth_flow,
        process_before_response=False,
        logger=logging.getLogger("bots.slack.bolt"),
    )
    reporter = SlackReporter(SlackClients(settings, installations, session), store, settings)
    front = SlackFrontDoor(settings, store, queue, executor, reporter, Names())
    keeper = KeepDeliveries(store, ack_executor or executor, timedelta(seconds=settings.inbox_lease_seconds))
    bolt.use(keeper)
    handling = Handling(front)
    _listen(bolt, handling)
    socket = None
    if settings.slack_app_token is not None:
        socket = AsyncSocketModeHandler(
            bolt, settings.slack_app_token.get_secret_value(), web_client=web_client(settings, session=session)
        )
    verifier = SignatureVerifier(signing_secret) if signing_secret else None
    return SlackBot(bolt, front, handling, keeper, socket, verifier)


def _listen(bolt: AsyncApp, handling: Handling) -> None:
    async def on_event(body: dict, client: AsyncWebClient, context: dict) -> None:
        await handling.handle(body, client, context.get("bot_user_id"), context.get(INBOX_KEY))

    for name in ("app_mention", "message", "reaction_added"):
        bolt.event(name)(on_event)


# --- aiohttp side -----------------------------------------------------------------------------

SLACK_BOT = web.AppKey("slack_bot", SlackBot)


class SlackEvent(BaseModel):
    """The fields of an Events API ``event`` the app reads, with the types Slack sends."""

    model_config = ConfigDict(extra="allow")
    type: str
    user: str | None = None
    channel: str | None = None
    channel_type: str | None = None
    ts: str | None = None
    thread_ts: str | None = None
    text: str | None = None
    subtype: str | None = None
    bot_id: str | None = None
    reaction: str | None = None
    item: dict[str, Any] | None = None
    files: list[dict[str, Any]] | None = None


class SlackEnvelope(BaseModel):
    """A delivery to ``/slack/events`` (an Events API callback, the URL handshake, an interaction)."""

    model_config = ConfigDict(extra="allow")
    type: str
    team_id: str | None = None
    event_id: str | None = None
    enterprise_id: str | None = None
    event: SlackEvent | None = None
    authorizations: list[dict[str, Any]] | None = None

    @model_validator(mode="after")
    def _a_callback_names_its_workspace_and_event(self) -> SlackEnvelope:
        if self.type == "event_callback" and (not self.team_id or self.event is None):
            raise ValueError("an event_callback carries team_id and event")
        event = self.event
        person = event is not None and event.type in ("app_mention", "message") and bool(event.user)
        if person and event is not None and not (event.channel and event.ts):
            raise ValueError("a person's message carries its channel and ts")
        return self


async def events(request: web.Request) -> web.Response:
    """Slack's deliveries, to bolt once Slack's signature holds.  The check comes first (bolt
    checks again): bolt answers 500 to a timestamp that is not a number and to a body it cannot
    parse, before any handler of ours runs.  Unsigned → 401; signed but unreadable → 400,
    logged (Slack sent something new)."""
    bot = request.app[SLACK_BOT]
    raw = await request.read()
    if not _signed(bot.verifier, raw, request):
        raise OzError(ErrorCode.AUTHENTICATION_REQUIRED, "the delivery's Slack signature does not hold")
    try:
        delivery = await to_bolt_request(request)  # parses the body and reads fields of it
        SlackEnvelope.model_validate(delivery.body)
    # not UTF-8, not JSON, nested past the parser's depth, or not the shape Slack sends (a
    # ValidationError is a ValueError)
    except (ValueError, RecursionError, AttributeError, TypeError, KeyError, IndexError):
        log.info("slack.unparsable_delivery", size=len(raw))
        raise OzError(ErrorCode.INVALID_REQUEST, "the delivery's body is not a Slack event (JSON or form)") from None
    # Kept before bolt sees it: bolt's own steps (its authorization calls Slack) may answer
    # 200 and drop the delivery; kept, it is taken up again (core/inbox.py).
    if not await bot.keeper.keep(delivery):
        return web.Response(status=200)
    return await to_aiohttp_response(await bot.bolt.async_dispatch(delivery))


def _signed(verifier: SignatureVerifier | None, raw: bytes, request: web.Request) -> bool:
    """Slack's own check (signature and age) of a body that may not even be UTF-8."""
    if verifier is None:
        return False
    try:
        return verifier.is_valid_request(raw, dict(request.headers))
    except (ValueError, UnicodeDecodeError):
        return False


async def install(request: web.Request) -> web.Response:
    flow = request.app[SLACK_BOT].bolt.oauth_flow
    if flow is None:
        raise web.HTTPNotFound(text="this gateway runs a single-workspace Slack app (no OAuth install)")
    return await to_aiohttp_response(await flow.handle_installation(await to_bolt_request(request)))


async def oauth_redirect(request: web.Request) -> web.Response:
    flow = request.app[SLACK_BOT].bolt.oauth_flow
    if flow is None:
        raise web.HTTPNotFound(text="this gateway runs a single-workspace Slack app (no OAuth install)")
    return await to_aiohttp_response(await flow.handle_callback(await to_bolt_request(request)))


def slack_configured(settings: Settings) -> bool:
    return bool(settings.slack_signing_secret or settings.slack_app_token or settings.slack_client_id)


def slack_lifecycle(
    open_bot: Callable[[web.Application, aiohttp.ClientSession], SlackBot],
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A ``cleanup_ctx`` entry: one HTTP session for every Slack call, the bot built with the app's
    resources, Socket Mode connected; all closed after."""

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession() as session:
            bot = app[SLACK_BOT] = open_bot(app, session)
            if bot.socket is not None:
                await bot.socket.connect_async()
                log.info("slack.socket_mode_connected")
            settings = bot.front.settings
            sweeper = asyncio.create_task(
                inbox.take_up_forever(
                    bot.front.store,
                    bot.front.executor,
                    "slack",
                    bot.handling.take_up,
                    lease=timedelta(seconds=settings.inbox_lease_seconds),
                    every=settings.inbox_sweep_seconds,
                )
            )
            yield
            sweeper.cancel()
            if bot.socket is not None:
                await bot.socket.close_async()

    return lifecycle
