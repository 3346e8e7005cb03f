"""Linear's GraphQL API through ``gql`` (aiohttp transport).

Linear reports most failures inside an HTTP 200 (or 400) body as GraphQL ``errors``: a
``RATELIMITED`` one is waited out and retried; a user error (``extensions.userError``) is
the request's fault and never retried.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from gql import Client, GraphQLRequest
from gql.transport.aiohttp import AIOHTTPTransport
from gql.transport.exceptions import TransportQueryError

log = structlog.get_logger(__name__)
RATE_LIMIT_RETRIES = 3
RATE_LIMIT_WAIT = 1.0


class LinearError(Exception):
    """Linear refused a request; ``user_error`` when it was ours to fix (never retried)."""

    def __init__(self, message: str, code: str | None, user_error: bool) -> None:
        super().__init__(message)
        self.code = code
        self.user_error = user_error


def _first_error(exc: TransportQueryError) -> dict:
    return (exc.errors or [{}])[0] or {}


class LinearClient:
    def __init__(self, url: str, token: str | Callable[[], Awaitable[str]], timeout: int = 30) -> None:
        """``token``: a fixed one, or where to get the current one (``bots/linear/tokens.py``: it
        changes when renewed); ``timeout``: seconds a call may take
        (``OZGW_OUTBOUND_TIMEOUT_SECONDS``): a hung Linear must not wedge the reporter or a front door."""
        self.url, self.timeout = url, timeout
        self._token_source = token if callable(token) else None
        self._fixed = token if isinstance(token, str) else None
        self._token: str | None = None
        self._client: Client | None = None
        self._session: Any = None
        self._lock = asyncio.Lock()

    def _build(self, token: str) -> Client:
        # OAuth and client-credentials tokens go as Bearer; personal API keys (lin_api_…) bare.
        authorization = token if token.startswith("lin_api_") else f"Bearer {token}"
        return Client(
            transport=AIOHTTPTransport(
                url=self.url, headers={"Authorization": authorization}, ssl_close_timeout=0, timeout=self.timeout
            ),
            fetch_schema_from_transport=False,
            execute_timeout=self.timeout,
        )

    async def _connected(self) -> Any:
        token = self._fixed if self._token_source is None else await self._token_source()
        async with self._lock:
            if self._session is None or token != self._token:
                if self._session is not None and self._client is not None:  # renewed: the old one goes
                    await self._client.close_async()
                self._client, self._token = self._build(token or ""), token
                self._session = await self._client.connect_async()
            return self._session

    async def execute(self, request: GraphQLRequest, **variables: Any) -> dict:
        session = await self._connected()
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            try:
                return await session.execute(GraphQLRequest(request, variable_values=variables or None))
            except TransportQueryError as exc:
                error = _first_error(exc)
                extensions = error.get("extensions") or {}
                code = extensions.get("code")
                if code == "RATELIMITED" and attempt < RATE_LIMIT_RETRIES:
                    log.info("linear.rate_limited", attempt=attempt + 1)
                    await asyncio.sleep(RATE_LIMIT_WAIT * (attempt + 1))
                    continue
                message = extensions.get("userPresentableMessage") or error.get("message") or str(exc)
                raise LinearError(message, code, bool(extensions.get("userError"))) from None
        raise AssertionError("unreachable")

    async def close(self) -> None:
        if self._session is not None and self._client is not None:
            await self._client.close_async()
            self._session = None
