"""Runner fixtures (a pytest plugin, see ``tests/conftest.py``): the real Docker engine with a
locally built image, bare git remotes on disk, a fake GitHub, and a worker context wired to them."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from core import environments, integrations, runs
from core.accounts import create_account
from core.github_auth import save_authorization
from core.models import IntegrationProvider, Principal
from core.models.wire import RunAgentRequest
from core.queue import RunQueue
from core.settings import Settings
from core.store import Store
from core.store.tables import RunRow
from core.vault import Vault
from runner.context import WorkerContext
from runner.sandbox import RUN_LABEL, containers_of
from runner.snapshots import Snapshots
from tests.fakes.github import FakeGitHub
from tests.redis_server import REDIS_URL
from tests.support.people import AGENT_LIMIT

APP_ID = "424242"


def local_runner_env(image: str, agent: str) -> dict[str, str]:
    """Environment for a gateway process that runs a scripted agent in the local test image,
    with no network and no image pulls (nothing may leave this machine)."""
    return {
        "OZGW_DEFAULT_IMAGE": image,
        "OZGW_PULL_IMAGES": "false",
        "OZGW_CONTAINER_NETWORK": "none",
        "OZGW_DEFAULT_HARNESS": "command",
        "OZGW_COMMAND_HARNESS": f"/bin/sh /opt/agents/{agent}",
        "OZGW_COMMAND_HARNESS_FORMAT": "text",
        "OZGW_CONTAINER_MEMORY": "256m",
    }


def worker_env(
    database_url: str, queue_name: str, data_dir: Path, image: str, agent: str, **extra: str
) -> dict[str, str]:
    """The environment of an ``oz-gateway worker`` subprocess running a scripted agent locally."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OZGW_")}
    env.update(
        OZGW_DATABASE_URL=database_url,
        OZGW_REDIS_URL=REDIS_URL,
        OZGW_QUEUE_NAME=queue_name,
        OZGW_DATA_DIR=str(data_dir),
        **local_runner_env(image, agent),
        **extra,
    )
    return env


def start_agent_worker(
    tmp_path: Path,
    database_url: str,
    queue: RunQueue,
    settings: Settings,
    image: str,
    agent: str = "edit.sh",
    **overrides: str,
) -> subprocess.Popen:
    """An ``oz-gateway worker`` running ``agent`` for people's runs (their GitHub tokens decrypt);
    ``overrides`` are further ``OZGW_*`` settings (another harness, more memory)."""
    env = worker_env(
        database_url,
        queue.queue.name,
        tmp_path / "worker",
        image,
        agent,
        OZGW_GITHUB_API_URL=settings.github_api_url,
        OZGW_GITHUB_CLONE_URL=settings.github_clone_url,
        OZGW_ENCRYPTION_KEYS=settings.encryption_keys.get_secret_value(),
        OZGW_PUBLIC_URL=settings.public_url,
    )
    env["OZGW_COMMAND_HARNESS_FORMAT"] = "claude" if agent == "edit.sh" else "text"  # edit.sh speaks stream-json
    env.update(overrides)
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 - kept open for the worker's lifetime
    return subprocess.Popen([sys.executable, "-m", "cli", "worker"], env=env, stdout=log, stderr=log)


COSTLY_CONTAINERS = {"OZGW_PRICES": '{"container_minute": 30}', "OZGW_COST_CHECK_SECONDS": "0.3"}
"""``start_agent_worker`` overrides for a worker whose containers cost $0.50 a second (checked
every 0.3 s): a $1 budget lasts about two, so a test sees a run stopped at its limit."""


def start_reporter(tmp_path: Path, database_url: str, queue: RunQueue, **settings: str) -> subprocess.Popen:
    """The ``oz-gateway reporter`` process, rendering quickly for tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OZGW_")}
    env.update(
        OZGW_DATABASE_URL=database_url,
        OZGW_REDIS_URL=REDIS_URL,
        OZGW_QUEUE_NAME=queue.queue.name,
        OZGW_DATA_DIR=str(tmp_path / "reporter"),
        OZGW_REPORT_INTERVAL_SECONDS="0.3",
        OZGW_REPORT_SWEEP_SECONDS="2",
        **settings,
    )
    log = open(tmp_path / "reporter.log", "w")  # noqa: SIM115 - kept open for the process's lifetime
    return subprocess.Popen([sys.executable, "-m", "cli", "reporter"], env=env, stdout=log, stderr=log)


def person_with_repo(
    store: Store, settings: Settings, github: FakeGitHub, remotes: Remotes, image: str, provider: IntegrationProvider
) -> Principal:
    """Ada: an account that authorized GitHub, a repo she can push to (``acme/web``), an
    environment with it, and the ``provider`` integration pointing there."""
    with store.session() as session:
        account = create_account(session, "ada@acme.dev", "acme", display_name="Ada Lovelace")
        save_authorization(session, Vault.from_settings(settings), account.uid, "ada-gh", github.add_user("ada-gh"))
        principal = Principal(kind="user", uid=account.uid, team_uid=account.team_uid, email=account.email)
        env = environments.create_environment(session, principal, name="web", docker_image=image, repos=["acme/web"])
        integrations.create_integration(session, principal, provider, environment_id=env.uid)
    remotes.create("acme", "web")
    github.add_repo("acme", "web", collaborators={"ada-gh": "write"})
    return principal


@pytest.fixture(scope="session")
def app_key() -> tuple[str, str]:
    """A GitHub App key pair generated for the test session (never committed)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@pytest.fixture
def github(app_key: tuple[str, str]) -> Iterator[FakeGitHub]:
    fake = FakeGitHub(app_id=APP_ID, app_public_key=app_key[1]).start()
    yield fake
    fake.stop()


def git(*args: str, cwd: Path, input: str | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, input=input).stdout


class Remotes:
    """Bare repositories standing in for github.com: ``{root}/{owner}/{repo}.git``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def url(self) -> str:
        return f"file://{self.root}"

    def create(self, owner: str, name: str, branch: str = "main") -> Path:
        bare = self.root / owner / f"{name}.git"
        seed = self.root / "_seed" / owner / name
        seed.mkdir(parents=True)
        git("init", "-q", "-b", branch, cwd=seed)
        (seed / "README.md").write_text(f"# {name}\n")
        git("add", "README.md", cwd=seed)
        git("-c", "user.name=Seed", "-c", "user.email=seed@example.com", "commit", "-q", "-m", "initial", cwd=seed)
        bare.parent.mkdir(parents=True, exist_ok=True)
        git("clone", "-q", "--bare", str(seed), str(bare), cwd=self.root)
        return bare

    def log(self, owner: str, name: str, ref: str) -> str:
        return git("log", "-1", "--format=%an <%ae>%n%B", ref, cwd=self.root / owner / f"{name}.git")

    def show(self, owner: str, name: str, ref: str, path: str) -> str:
        return git("show", f"{ref}:{path}", cwd=self.root / owner / f"{name}.git")

    def branches(self, owner: str, name: str) -> list[str]:
        out = git("branch", "--format=%(refname:short)", cwd=self.root / owner / f"{name}.git")
        return out.split()


@pytest.fixture
def remotes(tmp_path: Path) -> Remotes:
    return Remotes(tmp_path / "remotes")


@pytest.fixture
def runner_settings(
    settings: Settings, tmp_path: Path, github: FakeGitHub, remotes: Remotes, app_key: tuple[str, str], test_image: str
) -> Settings:
    return settings_with(
        settings,
        **{
            "work_dir": tmp_path / "work",
            "default_image": test_image,
            "default_harness": "command",
            "command_harness": "/bin/sh /opt/agents/edit.sh",
            "command_harness_format": "claude",
            "container_network": "none",
            "container_memory": "256m",
            "container_cpus": 1.0,
            "pull_images": False,
            "github_api_url": github.url,
            "github_clone_url": remotes.url,
            "github_app_id": APP_ID,
            "github_app_private_key": app_key[0],
            "heartbeat_seconds": 0.3,
            "cancel_poll_seconds": 0.2,
            "abandoned_after_seconds": 2.0,
            "encryption_keys": Fernet.generate_key().decode(),
            "public_url": "http://gateway.test",
            "max_runtime_seconds": 120,
        },
    )


@pytest.fixture
def ctx(
    runner_settings: Settings, store: Store, queue: RunQueue, docker_client: docker.DockerClient, test_image: str
) -> Iterator[WorkerContext]:
    context = WorkerContext.build(runner_settings, store, queue)
    yield context
    # Remove only this test's leftovers: another test session may share the engine.
    with store.reader() as session:
        mine = set(session.scalars(select(RunRow.run_id)))
    for container in containers_of(docker_client):
        if container.labels.get(RUN_LABEL) in mine:
            container.remove(force=True)
    Snapshots(context.settings, docker_client).clear()  # the snapshot images this test's runs made


def settings_with(settings: Settings, **changes: object) -> Settings:
    """A validated copy (``model_copy`` would skip validation and leave secrets as plain strings)."""
    return Settings.model_validate({**settings.model_dump(), **changes})


def with_settings(ctx: WorkerContext, **changes: object) -> WorkerContext:
    return dataclasses.replace(ctx, settings=settings_with(ctx.settings, **changes))


@dataclasses.dataclass
class Person:
    principal: Principal
    github_login: str
    github_token: str


@pytest.fixture
def runner_alice(store: Store, ctx: WorkerContext, github: FakeGitHub) -> Person:
    with store.session() as session:
        account = create_account(session, "alice@example.com", "acme", display_name="Alice Liddell")
    token = github.add_user("alice-gh")
    with store.session() as session:
        save_authorization(session, ctx.vault, account.uid, "alice-gh", token)
    return Person(
        Principal(kind="user", uid=account.uid, team_uid=account.team_uid, email=account.email), "alice-gh", token
    )


@pytest.fixture
def make_env(store: Store, runner_alice: Person, test_image: str) -> Callable[..., str]:
    def make(
        repos: list[str] = (),
        setup: list[str] = (),
        image: str | None = None,
        working_dir: str | None = None,
        network: str | None = None,
        egress: list[str] = (),
        read_only_root: bool = False,
    ) -> str:
        with store.session() as session:
            env = environments.create_environment(
                session,
                runner_alice.principal,
                name="env",
                docker_image=image or test_image,
                repos=list(repos),
                setup_commands=list(setup),
                working_dir=working_dir,
                network_mode=network,
                egress=list(egress),
                read_only_root=read_only_root,
            )
        return env.uid

    return make


@pytest.fixture
def start_run(store: Store) -> Callable[..., str]:
    def start(principal: Principal, env_id: str | None, prompt: str = "Fix the README typo") -> str:
        config = {"environment_id": env_id} if env_id else {}
        created = runs.create(
            store, None, principal, RunAgentRequest(prompt=prompt, config=config), agent_limit=AGENT_LIMIT
        )
        return created.run.run_id

    return start
