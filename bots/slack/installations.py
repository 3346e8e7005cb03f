"""Slack OAuth installations and install ``state`` in the gateway's store.

slack-sdk's SQLAlchemy stores do the work (its schema, its queries); these async faces run
them off the event loop and encrypt every token with the gateway's :class:`Vault`, so the
store never holds a usable Slack token.
"""

from __future__ import annotations

import asyncio
import copy
from typing import TypeVar

from slack_sdk.oauth.installation_store import Bot, Installation
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore

from core.store import Store
from core.store.tables import SLACK_BOTS, SLACK_INSTALLATIONS, SLACK_OAUTH_STATES
from core.vault import Vault

TOKEN_FIELDS = ("bot_token", "bot_refresh_token", "user_token", "user_refresh_token")
T = TypeVar("T", Installation, Bot)


def _transform(entity: T, change) -> T:
    clone = copy.copy(entity)
    for name in TOKEN_FIELDS:
        value = getattr(clone, name, None)
        if value:
            setattr(clone, name, change(value))
    return clone


class StoreInstallations(AsyncInstallationStore):
    def __init__(self, store: Store, vault: Vault, client_id: str) -> None:
        self._sync = SQLAlchemyInstallationStore(
            client_id=client_id,
            engine=store.engine,
            installations_table_name=SLACK_INSTALLATIONS.name,
            bots_table_name=SLACK_BOTS.name,
        )
        self.vault = vault

    @property
    def logger(self):
        return self._sync.logger

    async def async_save(self, installation: Installation) -> None:
        await asyncio.to_thread(self._sync.save, _transform(installation, self.vault.encrypt))

    async def async_save_bot(self, bot: Bot) -> None:
        await asyncio.to_thread(self._sync.save_bot, _transform(bot, self.vault.encrypt))

    async def async_find_bot(
        self, *, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False
    ) -> Bot | None:
        bot = await asyncio.to_thread(
            self._sync.find_bot,
            enterprise_id=enterprise_id,
            team_id=team_id,
            is_enterprise_install=is_enterprise_install,
        )
        return None if bot is None else _transform(bot, self.vault.decrypt)

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        found = await asyncio.to_thread(
            self._sync.find_installation,
            enterprise_id=enterprise_id,
            team_id=team_id,
            user_id=user_id,
            is_enterprise_install=is_enterprise_install,
        )
        return None if found is None else _transform(found, self.vault.decrypt)

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await asyncio.to_thread(self._sync.delete_bot, enterprise_id=enterprise_id, team_id=team_id)

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        await asyncio.to_thread(
            self._sync.delete_installation, enterprise_id=enterprise_id, team_id=team_id, user_id=user_id
        )


class StoreOAuthStates(AsyncOAuthStateStore):
    def __init__(self, store: Store, expiration_seconds: int = 600) -> None:
        self._sync = SQLAlchemyOAuthStateStore(
            expiration_seconds=expiration_seconds, engine=store.engine, table_name=SLACK_OAUTH_STATES.name
        )

    @property
    def logger(self):
        return self._sync.logger

    async def async_issue(self, *args, **kwargs) -> str:
        return await asyncio.to_thread(self._sync.issue)

    async def async_consume(self, state: str) -> bool:
        return await asyncio.to_thread(self._sync.consume, state)
