"""Running the synchronous core from asyncio code (the web process, the reporter).

``core`` is synchronous (SQLAlchemy sessions, redis-py); async callers hand its calls to a
bounded thread pool so the event loop never waits on a database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

T = TypeVar("T")


async def off_loop(executor: Executor | None, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` on ``executor`` (``None``: the loop's default pool)."""
    return await asyncio.get_running_loop().run_in_executor(executor, lambda: fn(*args, **kwargs))
