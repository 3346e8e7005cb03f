"""Slack Web API clients: one retry policy, and the right bot token for each workspace.

slack-sdk's default handlers only retry connection errors; ours also wait out 429s for
their ``Retry-After``, so a burst never loses a status update.
"""

from __future__ import annotations

import aiohttp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.web.async_client import AsyncWebClient

from core.errors import ErrorCode, OzError
from core.settings import Settings


def retry_handlers() -> list:
    return [AsyncConnectionErrorRetryHandler(max_retry_count=2), AsyncRateLimitErrorRetryHandler(max_retry_count=3)]


def web_client(
    settings: Settings, token: str | None = None, session: aiohttp.ClientSession | None = None
) -> AsyncWebClient:
    """A client on the process's shared HTTP session: slack-sdk otherwise opens a session (and a
    connection) per call, which dominates the cost of a busy thread."""
    return AsyncWebClient(
        token=token,
        base_url=settings.slack_api_url,
        retry_handlers=retry_handlers(),
        session=session,
        timeout=settings.outbound_timeout_seconds,
    )


class SlackClients:
    """Bot clients by workspace: the single bot token, or the workspace's OAuth installation."""

    def __init__(
        self,
        settings: Settings,
        installations: AsyncInstallationStore | None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.settings = settings
        self.installations = installations
        self.session = session
        self._clients: dict[str, AsyncWebClient] = {}

    async def for_team(self, team_id: str, enterprise_id: str | None = None) -> AsyncWebClient:
        token = await self._token(team_id, enterprise_id)
        client = self._clients.get(token)
        if client is None:
            client = self._clients[token] = web_client(self.settings, token, self.session)
        return client

    async def _token(self, team_id: str, enterprise_id: str | None) -> str:
        if self.settings.slack_bot_token is not None:
            return self.settings.slack_bot_token.get_secret_value()
        if self.installations is not None:
            bot = await self.installations.async_find_bot(enterprise_id=enterprise_id, team_id=team_id)
            if bot is not None and bot.bot_token:
                return bot.bot_token
        raise OzError(ErrorCode.INTEGRATION_NOT_CONFIGURED, f"the Slack app is not installed in workspace {team_id}")
