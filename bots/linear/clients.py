"""Linear clients by workspace, as ``bots/slack/clients.py`` keeps Slack's: a workspace the app
was installed in (``/linear/install``) is called with its own token and has its own app user;
any other — or a delivery that names none — with the gateway's default token.

Whether a workspace is installed is read from the store and remembered for ``REMEMBER``: an
install made by the web process reaches the reporter process within that.
"""

from __future__ import annotations

import time
from concurrent.futures import Executor

from bots.linear import queries
from bots.linear.client import LinearClient
from bots.linear.tokens import TokenSource
from core import linear_tokens
from core.linear_tokens import Workspace
from core.offload import off_loop
from core.settings import Settings
from core.store import Store
from core.vault import Vault

REMEMBER = 10.0


class LinearClients:
    def __init__(self, settings: Settings, store: Store | None, executor: Executor | None) -> None:
        self.settings, self.store, self.executor = settings, store, executor
        self.vault = Vault.from_settings(settings) if store is not None else None
        self.default = self._client(None)
        self._by_workspace: dict[str, LinearClient] = {}
        self._installs: dict[str, tuple[float, Workspace | None]] = {}
        self._default_app_user: str | None = settings.linear_app_user_id

    def _client(self, organization_id: str | None) -> LinearClient:
        tokens = TokenSource(self.settings, self.store, self.vault, self.executor, organization_id)
        return LinearClient(self.settings.linear_api_url, tokens.token, self.settings.outbound_timeout_seconds)

    async def installed(self, organization_id: str | None) -> Workspace | None:
        if not organization_id or self.store is None:
            return None
        seen = self._installs.get(organization_id)
        if seen is not None and time.monotonic() - seen[0] < REMEMBER:
            return seen[1]
        workspace = await off_loop(
            self.executor, self.store.call, linear_tokens.installed, organization_id, readonly=True
        )
        self._installs[organization_id] = (time.monotonic(), workspace)
        return workspace

    async def for_workspace(self, organization_id: str | None) -> LinearClient:
        workspace = await self.installed(organization_id)
        if workspace is None:
            return self.default
        client = self._by_workspace.get(workspace.organization_id)
        if client is None:
            client = self._by_workspace[workspace.organization_id] = self._client(workspace.organization_id)
        return client

    async def app_user(self, organization_id: str | None) -> str | None:
        """The app's own user in that workspace: what it must never act on (itself)."""
        workspace = await self.installed(organization_id)
        if workspace is not None and workspace.app_user_id:
            return workspace.app_user_id
        if self._default_app_user is None:
            self._default_app_user = (await self.default.execute(queries.VIEWER))["viewer"]["id"]
        return self._default_app_user

    async def close(self) -> None:
        for client in (self.default, *self._by_workspace.values()):
            await client.close()
