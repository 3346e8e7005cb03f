"""Shared fixtures: real SQLite and PostgreSQL stores, real Redis, a live gateway on port 0.

PostgreSQL tests get a database of their own, created in the ``test`` database's cluster
and dropped afterwards; Redis tests get a queue name of their own.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import psycopg
import pytest
import redis

from core.accounts import create_account
from core.keys import create_key
from core.queue import RunQueue, connect
from core.settings import Settings
from core.store import Store
from runner.disk import unmount_disk
from tests.images import busybox_image
from tests.live_server import LiveServer, gateway_server
from tests.redis_server import REDIS_URL
from tests.support.people import Person, add_file_artifact  # noqa: F401

pytest_plugins = ["tests.runner_support", "tests.boundary", "tests.real_agents"]

SESSION_STARTED = pytest.StashKey[float]()
PG_ADMIN_URL = os.environ.get("OZGW_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[SESSION_STARTED] = time.time()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """What outlives a test's ``tmp_path``: filesystems a killed worker process left mounted
    there, and the images of environment snapshots.  Once every xdist worker is done (in the
    controller, or a run without xdist) both are removed — the images made since the session
    started."""
    if hasattr(session.config, "workerinput"):
        return
    base = session.config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    unmount_disk(base)  # workspaces and ready disks a killed worker process left mounted
    started = session.config.stash.get(SESSION_STARTED, time.time())
    try:
        client = docker.from_env()
        images = client.api.images(filters={"label": "oz.snapshot"})
    except (docker.errors.DockerException, OSError):
        return
    for image in images:
        if image.get("Created", 0) >= started - 1:
            for reference in image.get("RepoTags") or [image["Id"]]:
                with contextlib.suppress(docker.errors.APIError):
                    client.api.remove_image(reference, force=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``docker``: every test that needs the engine (it asks for ``docker_client``, directly or
    through an image or a worker); ``postgres``: the PostgreSQL half of a two-store test, or a
    PostgreSQL-only one.  ``-m "not postgres and not docker"`` is then the fast lane."""
    for item in items:
        needs = getattr(item, "fixturenames", ())
        if "docker_client" in needs:
            item.add_marker(pytest.mark.docker)
        if "pg_database" in needs:  # PostgreSQL only, asked for by name
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    client = docker.from_env()
    client.ping()
    return client


@pytest.fixture(scope="session")
def test_image(docker_client: docker.DockerClient) -> str:
    return busybox_image(docker_client)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """One fresh PostgreSQL database for the session's PostgreSQL-backed tests."""
    name = f"ozgw_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _fresh_schema(store: Store) -> None:
    """Drop everything (including Alembic's version table) so each test migrates from zero."""
    from sqlalchemy import text

    from core.store.tables import Base

    with store.engine.begin() as conn:
        Base.metadata.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("pg_database")


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    if store.dialect == "postgresql":
        _fresh_schema(store)
    store.migrate()
    yield store
    store.dispose()


@pytest.fixture
def redis_client() -> redis.Redis:
    client = connect(REDIS_URL)
    client.ping()
    return client


@pytest.fixture
def queue(redis_client: redis.Redis) -> Iterator[RunQueue]:
    q = RunQueue(redis_client, f"oz-test-{uuid.uuid4().hex[:8]}", job_timeout=60)
    yield q
    q.queue.empty()
    q.queue.delete(delete_jobs=True)


@pytest.fixture
def settings(tmp_path: Path, database_url: str, queue: RunQueue) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        redis_url=REDIS_URL,
        queue_name=queue.queue.name,
        secret_key="test-signing-key-" + uuid.uuid4().hex,
        agent_limit=3,
        api_threads=8,
        pull_images=False,  # nothing may leave this machine: images are built locally
        container_network="none",
    )


@pytest.fixture
def gateway(settings: Settings, store: Store, queue: RunQueue) -> Iterator[LiveServer]:
    with gateway_server(settings, store, queue) as server:
        yield server


@pytest.fixture
def make_person(store: Store, gateway: LiveServer):
    def make(email: str | None = None, team: str = "acme", expires: str = "never") -> Person:
        email = email or f"{uuid.uuid4().hex[:8]}@example.com"
        with store.session() as session:
            account = create_account(session, email, team)
            _record, raw = create_key(session, account, "test", expires=expires)
        return Person(account, raw, gateway.api_url)

    return make


@pytest.fixture
def alice(make_person) -> Person:
    return make_person("alice@example.com")
