"""Opening the store: engine, per-dialect connection setup, and Alembic migrations."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import structlog
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
READONLY = "oz_readonly"
T = TypeVar("T")
log = structlog.get_logger(__name__)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers in other processes go on while one writes; busy_timeout turns
    cross-process contention into waiting; foreign keys are off by default in SQLite.
    pysqlite's own implicit BEGIN is switched off so :func:`_sqlite_begin` decides."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    """Writers take the write lock when the transaction starts, not at its first write.

    A deferred transaction that reads and then writes can find the lock taken and fail
    (or back off for a long time in SQLite's busy handler); taking it up front makes every
    writer wait its turn at BEGIN and then proceed to the end.  Read-only sessions begin
    deferred and, under WAL, never wait for a writer.
    """
    readonly = connection.get_execution_options().get(READONLY, False)
    connection.exec_driver_sql("BEGIN DEFERRED" if readonly else "BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=8,
            max_overflow=24,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    # No pre-ping (a round trip per checkout); a dropped connection is invalidated on error
    # and recycled connections cap how long a stale one can linger.
    return create_engine(
        parsed,
        pool_size=16,
        max_overflow=32,
        pool_recycle=1800,
        # An unreachable or wedged PostgreSQL fails a request instead of hanging it (the statement
        # limit is generous: migrations of a large store run through this engine too).
        connect_args={"connect_timeout": 10, "options": "-c statement_timeout=120000"},
    )


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def _nothing_like(column: Any) -> Any:
    """A key value of the column's type that matches no row."""
    try:
        kind = getattr(column.type, "impl_instance", column.type).python_type  # a TypeDecorator's own type
    except NotImplementedError:
        return ""
    return {int: 0, datetime: datetime(1970, 1, 1, tzinfo=UTC)}.get(kind, "")


class WriterLock:
    """One writer at a time, and an urgent one next: a webhook's ack (the delivery kept before
    it is answered) must not queue behind the work other deliveries do after theirs."""

    def __init__(self) -> None:
        self._turn = threading.Condition()
        self._held = False
        self._urgent_waiting = 0

    @contextmanager
    def hold(self, urgent: bool = False) -> Iterator[None]:
        with self._turn:
            self._urgent_waiting += urgent
            try:
                while self._held or (not urgent and self._urgent_waiting):
                    self._turn.wait()
            finally:
                self._urgent_waiting -= urgent
            self._held = True
        try:
            yield
        finally:
            with self._turn:
                self._held = False
                self._turn.notify_all()


class Store:
    """The engine and a session factory; every unit of work is one ``with store.session()``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(self.engine.execution_options(**{READONLY: True}), expire_on_commit=False)
        # SQLite has one writer at a time: queue this process's transactions on a lock rather
        # than in SQLite's busy handler, whose growing sleeps make a long latency tail.
        self._writer = WriterLock() if self.dialect == "sqlite" else None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (idempotent)."""
        command.upgrade(alembic_config(self.engine), "head")

    @contextmanager
    def session(self, urgent: bool = False) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back if it raises.  ``urgent``:
        someone waits for it right now (an ack); on SQLite it goes before other waiting writers."""
        turn = self._writer.hold(urgent) if self._writer is not None else nullcontext()
        with turn, self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def reader(self) -> Iterator[Session]:
        """A transaction that only reads: on SQLite it neither takes nor waits for the write lock."""
        with self._read_sessions() as session, session.begin():
            yield session

    def call(self, fn: Callable[..., T], *args: Any, readonly: bool = False, **kwargs: Any) -> T:
        """``fn(session, *args, **kwargs)`` in one transaction (a reader one with ``readonly``)."""
        with self.reader() if readonly else self.session() as session:
            return fn(session, *args, **kwargs)

    def dispose(self) -> None:
        self.engine.dispose()

    def prime(self) -> None:
        """Compile the primary-key look-up of every table once, in a process that forks workers:
        the engine (and its statement cache) goes with each fork (:meth:`after_fork`), so a
        short-lived child starts with them compiled instead of compiling them for every run."""
        from core.store.tables import Base

        for mapper in Base.registry.mappers:
            key = tuple(_nothing_like(column) for column in mapper.primary_key)
            try:
                with self.reader() as session:
                    session.get(mapper.class_, key if len(key) > 1 else key[0])
            except SQLAlchemyError as exc:  # only an optimisation: never a reason not to start
                log.warning("store.prime_failed", table=str(mapper.local_table), reason=str(exc)[:200])
        self.engine.dispose()  # no connection crosses a fork

    def after_fork(self) -> None:
        """In a forked child: the parent's engine and statement cache kept, none of its
        connections (``dispose(close=False)`` leaves them to the parent), a writer lock of its own."""
        self.engine.dispose(close=False)
        self._writer = WriterLock() if self.dialect == "sqlite" else None
