"""Identifier formats: 22-char base62 uids (as Oz environments use) and UUID run ids."""

from __future__ import annotations

import secrets
import string
import uuid

_BASE62 = string.ascii_letters + string.digits
UID_LENGTH = 22


def new_uid() -> str:
    """Random 22-character ``[A-Za-z0-9]`` id (~131 bits)."""
    return "".join(secrets.choice(_BASE62) for _ in range(UID_LENGTH))


def new_run_id() -> str:
    return str(uuid.uuid4())


def random_token(length: int) -> str:
    return "".join(secrets.choice(_BASE62) for _ in range(length))
