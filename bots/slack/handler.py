"""What a message to the app does, after Slack has been answered.

A mention (or a direct message) goes through: who is asking (:mod:`core.identity`) → what
the ask does in this thread (:mod:`core.asks`: stop, a follow-up, a refusal, or a new run) →
:eyes: and an "On it" reply → the thread as a prompt → :func:`core.asks.start`.  Every
refusal is explained privately to the person who asked, and none of them starts a run.
A :x: reaction by the requester on the run's messages cancels it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TypeVar

import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack import files, messages
from bots.slack.ref import SlackRef
from bots.slack.reporter import SlackReporter
from bots.slack.thread import Names, SlackMessage, conversation, request_text
from core import asks, identity, runs
from core.errors import ErrorCode, OzError
from core.identity import LinkRequired
from core.models import IntegrationProvider, Origin, Principal, Run, RunSourceType
from core.offload import off_loop
from core.prompts import build_prompt
from core.queue import RunQueue
from core.reporting import load_for_report
from core.settings import Settings
from core.signing import sign_token
from core.store import Store

log = structlog.get_logger(__name__)
T = TypeVar("T")
SLACK = IntegrationProvider.SLACK
STOP = re.compile(r"^(stop|cancel|abort)[.!]*$", re.IGNORECASE)
CANCEL_REACTIONS = frozenset({"x", "octagonal_sign", "no_entry_sign"})
STOP_REFUSED = "Only the person who started this run (or a team admin) can stop it."
LINK_PURPOSE = "slack-link"


def link_token(settings: Settings, request_uid: str) -> str:
    return sign_token(settings.signing_key(), LINK_PURPOSE, {"r": request_uid}, identity.LINK_REQUEST_TTL)


@dataclass
class SlackFrontDoor:
    settings: Settings
    store: Store
    queue: RunQueue | None
    executor: Executor
    reporter: SlackReporter
    names: Names

    async def _blocking(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        return await off_loop(self.executor, fn, *args, **kwargs)

    # --- mentions and direct messages -----------------------------------------------------

    async def handle_message(self, message: SlackMessage, client: AsyncWebClient, bot_user_id: str | None) -> None:
        text = request_text(message.text, bot_user_id)
        if not text and not message.files:
            await self._tell(client, message, "Tell me what to do, e.g. `@Oz fix the flaky test in tests/test_api.py`.")
            return
        ask = asks.Ask(SLACK, message.origin_key, text, stop=bool(STOP.match(text)))
        found = await self._blocking(self._look_up, message, ask)
        if found is None:
            parked = await self._blocking(
                self.store.call, identity.resolve_linked, SLACK, message.team, message.user, message.as_payload()
            )
            if isinstance(parked, LinkRequired):
                await self._ask_to_link(client, message, parked)
                return
            found = await self._blocking(self._look_up, message, ask)
            if found is None:  # linked, then unlinked at once: nothing to act for
                return
        await self.start(message, client, bot_user_id, ask, found)

    def _look_up(self, message: SlackMessage, ask: asks.Ask) -> asks.Situation | None:
        """Everything the store knows about this message, in one read: who, which run, which defaults."""
        with self.store.reader() as session:
            account = identity.linked_account(session, SLACK, message.team, message.user)
            if account is None:
                return None
            return asks.situation(session, account, ask, setup_url=self.settings.console_url)

    async def start(
        self,
        message: SlackMessage,
        client: AsyncWebClient,
        bot_user_id: str | None,
        ask: asks.Ask,
        found: asks.Situation,
    ) -> Run | None:
        """Act for a known person: stop, follow up, or start a run in the thread."""
        steered = await self._blocking(asks.steer, self.store, self.queue, found, ask)
        match steered:
            case asks.NothingToStop():
                await self._tell(client, message, "Nothing is running in this thread.")
                return None
            case asks.Stopped(run=run):
                log.info("slack.run_cancelled", run_id=run.run_id)
                await self.reporter.report(*await self._blocking(load_for_report, self.store, run.run_id))
                return None
            case asks.FollowedUp(run=run):
                await self._react(client, message, "eyes")
                await self._tell(client, message, "Added to the run in progress as a follow-up.")
                return run
            case asks.Refused(error=error):
                if ask.stop and error.code == ErrorCode.NOT_AUTHORIZED:
                    await self._tell(client, message, STOP_REFUSED)
                else:
                    await self._refuse(client, message, error)
                return None
        assert isinstance(steered, asks.Proceed)
        await self._react(client, message, "eyes")
        posted = await client.chat_postMessage(
            channel=message.channel, thread_ts=message.root, text="On it", blocks=messages.status_placeholder()
        )
        started = await self._create(message, client, bot_user_id, ask, steered, posted["ts"])
        if isinstance(started, asks.Refused):
            reply, blocks = messages.refusal(started.error)
            await client.chat_update(channel=message.channel, ts=posted["ts"], text=reply, blocks=blocks)
            return None
        log.info("slack.run_started", run_id=started.run.run_id, team=message.team, channel=message.channel)
        await self.reporter.report(*await self._blocking(load_for_report, self.store, started.run.run_id))
        return started.run

    async def _create(
        self,
        message: SlackMessage,
        client: AsyncWebClient,
        bot_user_id: str | None,
        ask: asks.Ask,
        go: asks.Proceed,
        status_ts: str,
    ) -> asks.Started | asks.Refused:
        permalink = await self._permalink(client, message)
        thread, shared = await conversation(client, self.names, message, bot_user_id, permalink)
        downloaded = await files.download(client, self.settings, shared)
        if downloaded.skipped:
            thread.facts.append(("Files not given to the agent", "\n".join(downloaded.skipped)))
        if go.previous is not None:
            previous = go.previous
            outcome = previous.status_message.message if previous.status_message else ""
            thread.facts.append(
                ("Earlier run in this thread", f"{previous.title} — {previous.state.value} {outcome}".strip())
            )
        requester = await self.names.of(client, message.team, message.user)
        prompt = build_prompt(ask.text, thread, instructions=go.defaults.instructions, requester=requester)
        ref = SlackRef(
            team=message.team,
            channel=message.channel,
            thread_ts=message.root,
            status_ts=status_ts,
            user=message.user,
            message_ts=message.ts,
            enterprise=message.enterprise or None,
        )
        return await self._blocking(
            asks.start,
            self.store,
            self.queue,
            go,
            source=RunSourceType.SLACK,
            prompt=prompt,
            title=ask.text,
            origin=Origin(source=RunSourceType.SLACK, trigger_url=permalink, ref=ref.stored(), key=message.origin_key),
            # The message itself is the idempotency key: however often it is delivered, one run.
            idempotency_key=f"slack:{message.team}:{message.channel}:{message.ts}",
            # A DM or private channel's run stays the person's own; a team one runs as the integration's agent.
            team_owned=not await self._private(client, message),
            files=downloaded.files,
            agent_limit=self.settings.agent_limit,
        )

    async def _private(self, client: AsyncWebClient, message: SlackMessage) -> bool:
        """A DM or a private channel: its run is the requester's (and admins'), not the whole
        team's.  When Slack cannot say, the run is treated as private."""
        if message.channel.startswith("D"):
            return True
        try:
            info = await client.conversations_info(channel=message.channel)
        except SlackApiError as error:
            log.info("slack.channel_unknown", channel=message.channel, reason=str(error.response.get("error")))
            return True
        channel = info.get("channel") or {}
        return bool(channel.get("is_private") or channel.get("is_im") or channel.get("is_mpim"))

    async def cancel(self, client: AsyncWebClient, message: SlackMessage, principal: Principal, run: Run) -> None:
        try:
            await self._blocking(runs.cancel, self.store, self.queue, principal, run.run_id)
        except OzError as error:
            if error.code != ErrorCode.NOT_AUTHORIZED:
                raise
            await self._tell(client, message, STOP_REFUSED)
            return
        log.info("slack.run_cancelled", run_id=run.run_id)
        await self.reporter.report(*await self._blocking(load_for_report, self.store, run.run_id))

    # --- reactions --------------------------------------------------------------------------

    async def handle_reaction(self, team: str, event: dict, client: AsyncWebClient) -> None:
        """A cancel reaction by the requester on the request or the run's status message."""
        item = event.get("item") or {}
        if event.get("reaction") not in CANCEL_REACTIONS or item.get("type") != "message":
            return
        account = await self._blocking(
            self.store.call, identity.linked_account, SLACK, team, event.get("user", ""), readonly=True
        )
        if account is None:
            return
        run = await self._blocking(
            self.store.call, _run_of_message, account.uid, item["channel"], item["ts"], readonly=True
        )
        if run is None:
            return
        message = SlackMessage(team=team, channel=item["channel"], user=event["user"], ts=item["ts"], text="")
        try:
            await self.cancel(client, message, identity.principal_of(account), run)
        except OzError as error:
            await self._refuse(client, message, error)

    # --- replies ----------------------------------------------------------------------------

    async def _ask_to_link(self, client: AsyncWebClient, message: SlackMessage, need: LinkRequired) -> None:
        url = f"{self.settings.effective_public_url}/link/slack?token={link_token(self.settings, need.request_uid)}"
        text, blocks = messages.link_account(url)
        await self._ephemeral(client, message, text, blocks)

    async def _refuse(self, client: AsyncWebClient, message: SlackMessage, error: OzError) -> None:
        log.info("slack.refused", code=error.code.value, team=message.team, channel=message.channel)
        await self._ephemeral(client, message, *messages.refusal(error))

    async def _tell(self, client: AsyncWebClient, message: SlackMessage, text: str) -> None:
        await self._ephemeral(client, message, text, None)

    async def _ephemeral(self, client: AsyncWebClient, message: SlackMessage, text: str, blocks: list | None) -> None:
        thread = message.thread_ts if message.thread_ts else None
        await client.chat_postEphemeral(
            channel=message.channel, user=message.user, text=text, blocks=blocks, thread_ts=thread
        )

    async def _react(self, client: AsyncWebClient, message: SlackMessage, name: str) -> None:
        try:
            await client.reactions_add(channel=message.channel, timestamp=message.ts, name=name)
        except SlackApiError as exc:
            if exc.response.get("error") != "already_reacted":
                raise

    async def _permalink(self, client: AsyncWebClient, message: SlackMessage) -> str | None:
        try:
            return (await client.chat_getPermalink(channel=message.channel, message_ts=message.ts))["permalink"]
        except SlackApiError:
            return None


def _run_of_message(session, account_uid: str, channel: str, ts: str) -> Run | None:
    """The requester's active Slack run whose request or status message is ``channel``/``ts``."""
    for run in runs.active_runs_of(session, account_uid, RunSourceType.SLACK):
        ref = SlackRef.of(run)
        if ref is not None and ref.names_message(channel, ts):
            return run
    return None
