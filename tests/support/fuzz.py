"""Fuzz test helpers: a gateway open to any input, and what the store holds."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import inspect, text

from core.settings import Settings
from core.store import Store
from tests.live_server import LiveServer


@dataclass
class OpenGateway:
    server: LiveServer
    settings: Settings
    secrets: list[str]
    """Every secret the gateway holds; none may appear in a response."""


def row_counts(store: Store) -> dict[str, int]:
    """How many rows each table holds: a request that changes none changed no state."""
    with store.reader() as session:
        tables = inspect(session.get_bind()).get_table_names()
        return {t: session.execute(text(f'SELECT COUNT(*) FROM "{t}"')).scalar_one() for t in sorted(tables)}
