"""Alembic environment: runs against the engine the caller passes in ``config.attributes``."""

from alembic import context
from sqlalchemy import create_engine

from core.store.tables import Base

config = context.config
engine = config.attributes.get("engine")
if engine is None:  # plain `alembic` command line: take the URL from the gateway settings
    from core.settings import get_settings

    engine = create_engine(get_settings().effective_database_url)

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
