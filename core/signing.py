"""Expiring HMAC signatures for links handed out without a bearer key (artifact downloads)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

from core.errors import ErrorCode, OzError
from core.store import utcnow

DEFAULT_TTL = timedelta(minutes=15)


def _mac(key: bytes, path: str, expires: int) -> str:
    return hmac.new(key, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()


def sign(key: bytes, path: str, ttl: timedelta = DEFAULT_TTL) -> tuple[str, datetime]:
    """``path?expires=…&signature=…`` and when it stops working."""
    expires_at = utcnow() + ttl
    expires = int(expires_at.timestamp())
    return f"{path}?expires={expires}&signature={_mac(key, path, expires)}", expires_at


def verify(key: bytes, path: str, expires: str | None, signature: str | None) -> None:
    denied = OzError(ErrorCode.NOT_AUTHORIZED, "the download link is invalid or has expired; fetch the artifact again")
    try:
        expires_at = int(expires or "")
    except ValueError:
        raise denied from None
    if not signature or expires_at < utcnow().timestamp():
        raise denied
    if not hmac.compare_digest(_mac(key, path, expires_at), signature):
        raise denied
