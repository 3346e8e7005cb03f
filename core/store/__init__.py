"""The store: SQLAlchemy 2 tables, Alembic migrations, SQLite by default, PostgreSQL in production."""

from typing import Any, cast

from sqlalchemy import CursorResult, Result

from core.store.engine import Store
from core.store.tables import utcnow


def changed(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE changed: the compare-and-sets read it to learn
    whether they won."""
    return cast(CursorResult[Any], result).rowcount


__all__ = ["Store", "changed", "utcnow"]
