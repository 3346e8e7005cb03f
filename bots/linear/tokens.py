"""The token every Linear call carries: a fixed one (``OZGW_LINEAR_ACCESS_TOKEN``: a personal
API key, or a token made elsewhere), or — with ``OZGW_LINEAR_CLIENT_ID``/``_SECRET`` — the app's
own client-credentials token (``actor=app``), requested when none is kept and renewed
``RENEW_BEFORE`` its 30 days run out, so the Linear front door does not die on day 31.

A renewal that fails leaves the kept token in use while it holds (and says so in ``integration
list``); once none holds, Linear calls fail with :class:`LinearTokenUnavailable`, naming what to
fix.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from datetime import timedelta
from typing import TypeVar

import aiohttp
import structlog

from core import linear_tokens
from core.offload import off_loop
from core.secrets import Vault
from core.settings import Settings
from core.store import Store, utcnow

log = structlog.get_logger(__name__)
T = TypeVar("T")
RENEW_BEFORE = timedelta(days=3)
APP_SCOPES = "read,write,app:assignable,app:mentionable"


class LinearTokenUnavailable(Exception):
    """No Linear token holds: the app's credentials were refused, or Linear is unreachable."""


class TokenSource:
    def __init__(self, settings: Settings, store: Store | None, vault: Vault | None, executor: Executor | None) -> None:
        self.settings = settings
        self.store, self.vault, self.executor = store, vault, executor

    @property
    def renews(self) -> bool:
        return bool(self.settings.linear_client_id and self.settings.linear_client_secret and self.store)

    async def token(self) -> str:
        if not self.renews:
            fixed = self.settings.linear_access_token
            return fixed.get_secret_value() if fixed else ""
        client_id = self.settings.linear_client_id
        kept = await self._store(linear_tokens.stored, self.vault, client_id)
        now = utcnow()
        if kept is not None and kept.valid_for(now) > RENEW_BEFORE:
            return kept.token
        if await self._store(linear_tokens.claim_renewal, client_id):
            try:
                token, lifetime = await self._grant()
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
                reason = f"{type(exc).__name__}: {exc}"[:300]
                log.error("linear.token_renewal_failed", reason=reason)
                await self._store(linear_tokens.record_failure, client_id, reason)
            else:
                await self._store(linear_tokens.save, self.vault, client_id, token, utcnow() + lifetime)
                log.info("linear.token_renewed", expires_in_days=round(lifetime.total_seconds() / 86400, 1))
                return token
        if kept is not None and kept.valid_for(now) > timedelta(0):
            return kept.token  # renewing elsewhere, or failing: the kept one still holds
        raise LinearTokenUnavailable(
            "no Linear token holds: the app's client credentials were refused or Linear did not answer; "
            + linear_tokens.CHECK
        )

    async def _grant(self) -> tuple[str, timedelta]:
        """A client-credentials grant at Linear's token endpoint (an ``actor=app`` token)."""
        form = {
            "grant_type": "client_credentials",
            "client_id": self.settings.linear_client_id,
            "client_secret": self.settings.linear_client_secret.get_secret_value(),
            "scope": APP_SCOPES,
        }
        timeout = aiohttp.ClientTimeout(total=self.settings.outbound_timeout_seconds)
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.post(self.settings.linear_token_url, data=form) as response,
        ):
            body = await response.json(content_type=None)
            if response.status >= 400:
                raise ValueError(f"HTTP {response.status}: {body.get('error_description') or body.get('error')}")
            return body["access_token"], timedelta(seconds=int(body["expires_in"]))

    async def _store(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(session, *args)`` in a store transaction, off the event loop."""
        return await off_loop(self.executor, self.store.call, fn, *args)
