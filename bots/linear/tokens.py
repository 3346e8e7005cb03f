"""The token every Linear call carries, for the workspace the call is about.

- A workspace the app was **installed** in (``/linear/install``, ``actor=app``): its own access
  token, refreshed with its rotating refresh token before it runs out (a quarter of its
  lifetime, at most ``RENEW_BEFORE``).
- Otherwise the gateway's default: a fixed token (``OZGW_LINEAR_ACCESS_TOKEN``: a personal
  API key, or a token made elsewhere), or — with ``OZGW_LINEAR_CLIENT_ID``/``_SECRET`` — the
  app's own client-credentials token, requested when none is kept and renewed
  ``RENEW_BEFORE`` its 30 days run out, so the Linear front door does not die on day 31.

A renewal that fails leaves the kept token in use while it holds (and says so in ``integration
list``); once none holds, Linear calls fail with :class:`LinearTokenUnavailable`, naming what to
fix.  A refresh Linear answers ``invalid_grant`` means the app was uninstalled or the grant
revoked: the tokens are dropped and only a new install brings the workspace back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import aiohttp
import structlog

from core import linear_tokens
from core.linear_tokens import StoredToken
from core.offload import off_loop
from core.settings import Settings
from core.store import Store, utcnow
from core.vault import Vault

log = structlog.get_logger(__name__)
T = TypeVar("T")
RENEW_BEFORE = timedelta(days=3)
APP_SCOPES = "read,write,app:assignable,app:mentionable"
RENEWAL_POLL = 0.25


class LinearTokenUnavailable(Exception):
    """No Linear token holds: the app's credentials were refused, or Linear is unreachable."""


class GrantRefused(ValueError):
    """Linear's token endpoint said no; ``revoked`` when the grant itself is gone."""

    def __init__(self, message: str, revoked: bool) -> None:
        super().__init__(message)
        self.revoked = revoked


@dataclass(frozen=True)
class Grant:
    token: str
    refresh_token: str | None
    lifetime: timedelta


async def token_request(settings: Settings, form: dict[str, str]) -> Grant:
    """One call to Linear's token endpoint, with the app's credentials added."""
    form = form | {
        "client_id": settings.linear_client_id or "",
        "client_secret": settings.linear_client_secret.get_secret_value() if settings.linear_client_secret else "",
    }
    timeout = aiohttp.ClientTimeout(total=settings.outbound_timeout_seconds)
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.post(settings.linear_token_url, data=form) as response,
    ):
        body = await response.json(content_type=None)
        if response.status >= 400 or not isinstance(body, dict) or "access_token" not in body:
            detail = body.get("error_description") or body.get("error") if isinstance(body, dict) else None
            revoked = isinstance(body, dict) and body.get("error") == "invalid_grant"
            raise GrantRefused(f"HTTP {response.status}: {detail or 'no token in the answer'}", revoked)
        return Grant(body["access_token"], body.get("refresh_token"), timedelta(seconds=int(body["expires_in"])))


def renew_before(kept: StoredToken) -> timedelta:
    """How early a kept token is renewed: a refreshable one at a quarter of its lifetime (it
    lives a day), the 30-day app token ``RENEW_BEFORE`` its end."""
    if kept.refresh_token and kept.lifetime:
        return min(RENEW_BEFORE, kept.lifetime / 4)
    return RENEW_BEFORE


class TokenSource:
    """Where a :class:`~bots.linear.client.LinearClient` gets its token: for one workspace's
    install (``organization_id``), or the gateway's default."""

    def __init__(
        self,
        settings: Settings,
        store: Store | None,
        vault: Vault | None,
        executor: Executor | None,
        organization_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.store, self.vault, self.executor = store, vault, executor
        self.organization_id = organization_id

    @property
    def renews(self) -> bool:
        return bool(self.settings.linear_client_id and self.settings.linear_client_secret and self.store)

    async def token(self) -> str:
        if self.organization_id is not None:
            key = linear_tokens.workspace_key(self.organization_id)
            return await self._renewed(key, self._refresh, create=False)
        if not self.renews:
            fixed = self.settings.linear_access_token
            return fixed.get_secret_value() if fixed else ""
        return await self._renewed(self.settings.linear_client_id or "", self._client_credentials, create=True)

    async def _renewed(self, key: str, grant: Callable[[StoredToken | None], Awaitable[Grant]], create: bool) -> str:
        kept = await self._store(linear_tokens.stored, self.vault, key)
        now = utcnow()
        if kept is not None and kept.valid_for(now) > renew_before(kept):
            return kept.token or ""
        if await self._store(linear_tokens.claim_renewal, key, create=create):
            # Read again under the claim: another process may have renewed (and rotated the
            # refresh token) between the read above and the claim.
            current = await self._store(linear_tokens.stored, self.vault, key)
            if current is not None and current.valid_for(utcnow()) > renew_before(current):
                await self._store(linear_tokens.release_claim, key)
                return current.token or ""
            try:
                granted = await grant(current)
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
                reason = f"{type(exc).__name__}: {exc}"[:300]
                revoked = isinstance(exc, GrantRefused) and exc.revoked
                log.error("linear.token_renewal_failed", key=key, reason=reason, revoked=revoked)
                await self._store(linear_tokens.record_failure, key, reason, revoked=revoked)
                if revoked:
                    kept = None
            else:
                await self._store(
                    linear_tokens.save,
                    self.vault,
                    key,
                    granted.token,
                    utcnow() + granted.lifetime,
                    granted.refresh_token,
                )
                hours = round(granted.lifetime.total_seconds() / 3600)
                log.info("linear.token_renewed", key=key, expires_in_hours=hours)
                return granted.token
        if kept is not None and kept.valid_for(now) > timedelta(0):
            return kept.token or ""  # renewing elsewhere, or failing: the kept one still holds
        if kept is not None and kept.failing_since is None:
            waited = await self._renewed_elsewhere(key)  # none holds, but another process is renewing
            if waited is not None:
                return waited
        if self.organization_id is not None:
            raise LinearTokenUnavailable(
                f"no Linear token holds for workspace {self.organization_id}: its grant was revoked or "
                f"Linear did not answer; {linear_tokens.REINSTALL}"
            )
        raise LinearTokenUnavailable(
            "no Linear token holds: the app's client credentials were refused or Linear did not answer; "
            + linear_tokens.CHECK
        )

    async def _renewed_elsewhere(self, key: str) -> str | None:
        """The token another process is renewing right now, once it has it (or ``None``)."""
        deadline = utcnow() + timedelta(seconds=self.settings.outbound_timeout_seconds + 2)
        while utcnow() < deadline:
            await asyncio.sleep(RENEWAL_POLL)
            current = await self._store(linear_tokens.stored, self.vault, key)
            if current is None or current.failing_since is not None:
                return None
            if current.valid_for(utcnow()) > timedelta(0):
                return current.token or ""
        return None

    async def _client_credentials(self, _current: StoredToken | None) -> Grant:
        """A client-credentials grant (an ``actor=app`` token for the app's own workspace)."""
        return await token_request(self.settings, {"grant_type": "client_credentials", "scope": APP_SCOPES})

    async def _refresh(self, current: StoredToken | None) -> Grant:
        if current is None or not current.refresh_token:
            raise GrantRefused("the install has no refresh token", revoked=current is not None)
        form = {"grant_type": "refresh_token", "refresh_token": current.refresh_token}
        return await token_request(self.settings, form)

    async def _store(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """``fn(session, *args)`` in a store transaction, off the event loop."""
        assert self.store is not None, "only a TokenSource with a store renews"
        return await off_loop(self.executor, self.store.call, fn, *args, **kwargs)
