"""Renders a run into the Slack thread it came from.

One status message per run (the "On it" reply), edited in place from the run's current
state — so a render that repeats, arrives late or is skipped is harmless — plus one
closing post with the summary and pull-request link, guarded in the store so it is posted
once per execution however many processes render the run.  While the run works, Slack's
native "is working…" thread status is shown and re-sent before its two-minute expiry.
"""

from __future__ import annotations

import asyncio
import json
import time

import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack import messages
from bots.slack.clients import SlackClients
from bots.slack.ref import SlackRef
from core.models import Run, RunItem
from core.models.wire import TERMINAL_STATES
from core.reporting import Recent, claim_closing, release_closing
from core.settings import Settings
from core.store import Store

log = structlog.get_logger(__name__)
THREAD_STATUS_REFRESH = 90.0
"""Seconds between re-sends of the thread status, which Slack clears after two minutes."""
FINAL_GUARD_TTL = 7 * 24 * 3600


class SlackReporter:
    def __init__(self, clients: SlackClients, store: Store, settings: Settings) -> None:
        self.clients = clients
        self.store = store
        self.settings = settings
        self._shown: dict[str, str] = Recent()
        self._thread_status_at: dict[str, float] = Recent()

    async def report(self, run: Run, item: RunItem) -> None:
        ref = SlackRef.of(run)
        if ref is None or not ref.status_ts:
            return
        client = await self.clients.for_team(ref.team, ref.enterprise)
        changed = await self._show_status(client, ref, item)
        if item.state in TERMINAL_STATES:
            if changed:
                await self._thread_status(client, ref, run.run_id, working=False)
            await self._post_final(client, ref, run, item)
        else:
            await self._thread_status(client, ref, run.run_id, working=True)

    async def _show_status(self, client: AsyncWebClient, ref: SlackRef, item: RunItem) -> bool:
        """Edit the status message if its text would change; True when it did."""
        text, blocks = messages.status(item, self.settings.run_page(item.run_id))
        rendered = json.dumps([text, blocks])
        if self._shown.get(item.run_id) == rendered or ref.status_ts is None:
            return False
        await client.chat_update(channel=ref.channel, ts=ref.status_ts, text=text, blocks=blocks)
        self._shown[item.run_id] = rendered
        return True

    async def _post_final(self, client: AsyncWebClient, ref: SlackRef, run: Run, item: RunItem) -> None:
        if not await asyncio.to_thread(claim_closing, self.store, run.run_id, run.attempt):
            return
        text, blocks = messages.final(item)
        try:
            await client.chat_postMessage(channel=ref.channel, thread_ts=ref.thread_ts, text=text, blocks=blocks)
        except Exception:
            await asyncio.to_thread(release_closing, self.store, run.run_id, run.attempt)  # the next render tries again
            raise

    async def _thread_status(self, client: AsyncWebClient, ref: SlackRef, run_id: str, working: bool) -> None:
        """Slack's native thread status; only assistant threads have one, elsewhere Slack refuses."""
        last = self._thread_status_at.get(run_id)
        if working and last is not None and time.monotonic() - last < THREAD_STATUS_REFRESH:
            return
        try:
            await client.assistant_threads_setStatus(
                channel_id=ref.channel, thread_ts=ref.thread_ts, status=messages.THREAD_STATUS if working else ""
            )
        except SlackApiError as exc:
            log.debug("slack.thread_status_refused", run_id=run_id, error=exc.response.get("error"))
        if working:
            self._thread_status_at[run_id] = time.monotonic()
        else:
            self._thread_status_at.pop(run_id, None)
