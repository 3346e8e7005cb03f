"""Expiring HMAC signatures for links handed out without a bearer key (artifact downloads,
GitHub authorization links, OAuth ``state``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
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


def sign_token(key: bytes, purpose: str, data: dict, ttl: timedelta) -> str:
    """A compact, expiring, tamper-evident token carrying ``data`` (for links and OAuth state).

    ``purpose`` is mixed into the MAC so a token minted for one use is refused by another.
    """
    body = {"p": purpose, "d": data, "e": int((utcnow() + ttl).timestamp())}
    raw = base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()).decode().rstrip("=")
    mac = hmac.new(key, f"{purpose}.{raw}".encode(), hashlib.sha256).hexdigest()
    return f"{raw}.{mac}"


def read_token(key: bytes, purpose: str, token: str | None) -> dict:
    """The data of a valid token, or ``not_authorized`` (the reason is not told to the caller)."""
    denied = OzError(ErrorCode.NOT_AUTHORIZED, "the link is invalid or has expired; ask for a new one")
    raw, _, mac = (token or "").rpartition(".")
    expected = hmac.new(key, f"{purpose}.{raw}".encode(), hashlib.sha256).hexdigest()
    if not raw or not hmac.compare_digest(expected, mac):
        raise denied
    try:
        body = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, json.JSONDecodeError):
        raise denied from None
    if body.get("p") != purpose or body.get("e", 0) < utcnow().timestamp():
        raise denied
    return body["d"]
