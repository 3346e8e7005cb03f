"""The store: SQLAlchemy 2 tables, Alembic migrations, SQLite by default, PostgreSQL in production."""

from core.store.engine import Store
from core.store.tables import utcnow

__all__ = ["Store", "utcnow"]
