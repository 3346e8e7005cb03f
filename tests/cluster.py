"""A whole gateway as an operator runs it — ``serve``, ``worker``, ``reporter`` and
``scheduler`` processes — on a private Redis and a private PostgreSQL that may be killed and
restarted, with the fake Slack, Linear and GitHub in this process.  The chaos suite and the
soak bench drive it.

Its agent is ``tests/agents/chaos.sh`` in the busybox image: it tells a counter on the host
that it started (through the egress forwarder), works for a moment and answers, so a test can
see an agent that ran twice.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import hmac
import json
import os
import random
import shutil
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import requests
from cryptography.fernet import Fernet
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import select
from sqlalchemy.orm import Session

from core import environments, identity, integrations
from core.accounts import account_by_email, create_account
from core.keys import create_key
from core.models import IntegrationProvider, RunState
from core.models.wire import TERMINAL_STATES
from core.store import Store
from core.store.tables import RunRow
from tests.fakes.github import FakeGitHub
from tests.fakes.linear import FakeLinear
from tests.fakes.slack import TEAM, FakeSlack, event_fixture
from tests.redis_server import RedisServer, free_port
from tests.support.linear import payload

ROOT = Path(__file__).resolve().parents[1]
PROCESSES = ("web", "worker", "reporter", "scheduler")
ADA_SLACK = "U061F7AUR"
RETRY_PAUSE = 1.0
GIVE_UP_AFTER = 90.0
"""Seconds a trigger's sender keeps retrying (the real services retry for minutes to hours)."""


def _pg_bin(name: str) -> str:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    return str(versions[-1] / name) if versions else name


class PrivatePostgres:
    """A PostgreSQL cluster of its own (``initdb`` as the ``postgres`` user), restartable."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        """Where its clients reach it (it listens there and on 127.0.0.1)."""
        # Outside pytest's private temporary tree: the postgres user must reach it.
        self.base = Path(tempfile.mkdtemp(prefix="ozgw-pg-"))
        self.base.chmod(0o755)
        self.dir = self.base / "data"
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/gateway"

    def _as_postgres(self, *argv: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        if not (self.dir / "PG_VERSION").exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            shutil.chown(self.dir, "postgres", "postgres")
            self._as_postgres(_pg_bin("initdb"), "-D", str(self.dir), "-U", "postgres", "--auth=trust", "-E", "UTF8")
            if self.host != "127.0.0.1":  # the simulated hosts' addresses share its /24 (tests/hosts.py)
                with open(self.dir / "pg_hba.conf", "a") as hba:
                    hba.write(f"host all all {self.host}/24 trust\n")
            self._pg_ctl("start")
            with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
                conn.execute("CREATE DATABASE gateway")
            return
        self._pg_ctl("start")

    def _pg_ctl(self, action: str, *extra: str) -> None:
        listen = ",".join(dict.fromkeys(["127.0.0.1", self.host]))
        options = f"-p {self.port} -k {self.dir} -c listen_addresses={listen} -c fsync=off -c max_connections=300"
        self._as_postgres(
            _pg_bin("pg_ctl"), "-D", str(self.dir), "-o", options, "-l", str(self.dir / "log"), "-w", action, *extra
        )

    def restart(self) -> None:
        """As after a crash: every connection dropped, no clean shutdown."""
        self._pg_ctl("restart", "-m", "immediate")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._pg_ctl("stop", "-m", "immediate")
        shutil.rmtree(self.base, ignore_errors=True)


class StartCounter:
    """Counts, per run, how often its agent started (the agent calls ``GET /start/<run_id>``).

    It also keeps a gate a setup command may wait at (``GET /gate`` answers 503 until
    :attr:`gate` is set), to hold runs before their agents start."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.starts: Counter[str] = Counter()
        self.gate = threading.Event()
        counter = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                line = self.rfile.readline(500).decode(errors="replace").split()
                path = line[1] if len(line) >= 2 else ""
                if path.startswith("/start/"):
                    counter.starts[path.removeprefix("/start/")] += 1
                if path == "/gate" and not counter.gate.is_set():
                    self.wfile.write(b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
                    return
                self.wfile.write(b"HTTP/1.0 204 No Content\r\n\r\n")

        self.server = socketserver.ThreadingTCPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Cluster:
    root: Path
    image: str
    address: str = "127.0.0.1"
    """Where Redis, PostgreSQL, the fakes and the counter listen (the multi-host tests give an
    address their simulated hosts reach over their links: ``tests/hosts.py``)."""
    slack: FakeSlack = field(default_factory=FakeSlack)
    linear: FakeLinear = field(default_factory=FakeLinear)
    github: FakeGitHub = field(default_factory=FakeGitHub)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    restarts: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.redis = RedisServer(self.address)
        self.pg = PrivatePostgres(self.address)
        self.counter = StartCounter(self.address)
        for fake in (self.slack, self.linear, self.github):
            fake.server.host = self.address
        self.port = free_port()
        self.gateway_id = f"chaos-{uuid.uuid4().hex[:8]}"
        self.secrets = {
            "slack_signing": uuid.uuid4().hex,
            "slack_bot": "xoxb-" + uuid.uuid4().hex,
            "linear_webhook": "lin_wh_" + uuid.uuid4().hex,
            "linear_token": uuid.uuid4().hex,
        }
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OZGW_")}
        self.env.update(
            PYTHONPATH=str(ROOT),
            OZGW_DATABASE_URL=self.pg.url,
            OZGW_REDIS_URL=self.redis.url,
            OZGW_QUEUE_NAME="chaos",
            OZGW_DATA_DIR=str(self.root / "data"),
            OZGW_WORK_DIR=str(self.root / "work"),
            OZGW_SECRET_KEY=uuid.uuid4().hex * 2,
            OZGW_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
            OZGW_PORT=str(self.port),
            OZGW_PUBLIC_URL="http://gateway.test",
            OZGW_GATEWAY_ID=self.gateway_id,
            OZGW_LOG_LEVEL="INFO",
            OZGW_SLACK_SIGNING_SECRET=self.secrets["slack_signing"],
            OZGW_SLACK_BOT_TOKEN=self.secrets["slack_bot"],
            OZGW_LINEAR_WEBHOOK_SECRET=self.secrets["linear_webhook"],
            OZGW_LINEAR_ACCESS_TOKEN=self.secrets["linear_token"],
            OZGW_DEFAULT_IMAGE=self.image,
            OZGW_PULL_IMAGES="false",
            OZGW_CONTAINER_NETWORK="egress",
            OZGW_EGRESS_ALLOW_PRIVATE="true",
            OZGW_EGRESS_ALLOW=f'["{self.address}:{self.counter.port}"]',
            OZGW_DEFAULT_HARNESS="command",
            OZGW_COMMAND_HARNESS="/bin/sh /opt/agents/chaos.sh",
            OZGW_COMMAND_HARNESS_FORMAT="text",
            OZGW_CONTAINER_MEMORY="128m",
            OZGW_OUTBOUND_TIMEOUT_SECONDS="5",
            OZGW_REPORT_INTERVAL_SECONDS="0.3",
            OZGW_REPORT_SWEEP_SECONDS="2",
            OZGW_REPORT_LEASE_SECONDS="3",
            OZGW_SWEEP_INTERVAL_SECONDS="2",
            OZGW_HEARTBEAT_SECONDS="1",
            OZGW_ABANDONED_AFTER_SECONDS="6",
            OZGW_ORPHAN_GRACE_SECONDS="2",
            OZGW_INBOX_LEASE_SECONDS="5",
            OZGW_INBOX_SWEEP_SECONDS="1",
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.start_services()
        for name in PROCESSES:
            self.launch(name)
        self.wait_healthy()

    def start_services(self) -> None:
        """Redis, PostgreSQL (migrated) and the fakes: what every process shares."""
        self.redis.start()
        self.pg.start()
        for fake in (self.slack, self.linear, self.github):
            fake.start()
        self.env.update(
            OZGW_SLACK_API_URL=self.slack.api_url,
            OZGW_LINEAR_API_URL=self.linear.url,
            OZGW_GITHUB_API_URL=self.github.url,
        )
        store = Store(self.pg.url)
        store.migrate()
        store.dispose()

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "cli", *args], env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            raise RuntimeError(f"oz-gateway {' '.join(args)}: {done.stderr[-2000:]}")
        return done.stdout.strip()

    def launch(self, name: str) -> None:
        command = {"web": ["serve", "--port", str(self.port)]}.get(name, [name])
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - the process owns it
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "cli", *command],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the worker's work horses die with it
        )

    def kill(self, name: str) -> None:
        """``kill -9`` the process and everything it started (a worker's work horse too)."""
        process = self.processes.get(name)
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)

    def restart(self, name: str) -> None:
        """What a supervisor does after a crash."""
        self.kill(name)
        self.launch(name)
        self.restarts[name] += 1

    def restart_redis(self) -> None:
        """Redis keeps nothing on disk: the queue, claims and leases are gone."""
        self.redis.stop_hard()
        self.redis.start()
        self.restarts["redis"] += 1

    def restart_postgres(self) -> None:
        self.pg.restart()
        self.restarts["postgres"] += 1

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the web process never became healthy: {self.log_tail('web')}")

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self) -> None:
        for name in list(self.processes):
            self.kill(name)
        for part in (self.slack, self.linear, self.github):
            part.stop()
        self.counter.stop()
        self.redis.stop()
        self.pg.stop()


def provision(cluster: Cluster, network_mode: str = "egress", **variables: str) -> str:
    """Ada (admin, linked in Slack, known to Linear by email), an environment, both integrations;
    returns Ada's API key.  ``variables`` add to (or replace) the chaos agent's."""
    store = Store(cluster.pg.url)
    with store.session() as session:
        ada = create_account(session, "ada@acme.dev", "acme", display_name="Ada Lovelace")
        who = identity.principal_of(ada)
        env_uid = chaos_environment(session, cluster, "chaos", network_mode, **variables)
        for provider in (IntegrationProvider.SLACK, IntegrationProvider.LINEAR):
            integrations.create_integration(session, who, provider, environment_id=env_uid)
        identity.link(session, IntegrationProvider.SLACK, TEAM, ADA_SLACK, ada.uid)
        _record, key = create_key(session, ada, "chaos")
    store.dispose()
    return key


def chaos_environment(
    session: Session, cluster: Cluster, name: str, network_mode: str, setup: Sequence[str] = (), **variables: str
) -> str:
    """An environment of Ada's running the chaos agent (which reports to the cluster's counter);
    ``variables`` add to (or replace) the agent's.  Returns its id."""
    return environments.create_environment(
        session,
        identity.principal_of(account_by_email(session, "ada@acme.dev")),
        name=name,
        docker_image=cluster.image,
        network_mode=network_mode,
        setup_commands=setup,
        variables={
            "CHAOS_COUNTER_HOST": cluster.address,
            "CHAOS_COUNTER_PORT": str(cluster.counter.port),
            "CHAOS_WORK_SECONDS": "0.5",
            **variables,
        },
    ).uid


class Sender:
    """Sends one trigger the way its service does: retried until answered 2xx (Slack and Linear
    also repeat some deliveries that did succeed, as they do after a slow answer)."""

    def __init__(self, cluster: Cluster, api_key: str, environment_id: str | None = None) -> None:
        self.cluster = cluster
        self.api_key = api_key
        self.environment_id = environment_id
        """The environment of API runs (without one, a run has the default image and no variables)."""
        self.accepted: dict[str, str] = {}  # trigger id → surface
        self.slack_threads: dict[str, str] = {}  # trigger id → the thread's ts
        self.linear_sessions: dict[str, str] = {}
        self._lock = threading.Lock()

    def _until_accepted(self, trigger: str, surface: str, send: Callable[[int], requests.Response]) -> None:
        deadline = time.monotonic() + GIVE_UP_AFTER
        attempt = 0
        while time.monotonic() < deadline:
            try:
                if send(attempt).status_code < 300:
                    with self._lock:
                        self.accepted[trigger] = surface
                    if surface != "api" and random.random() < 0.2:
                        time.sleep(random.uniform(0.1, 1.5))
                        send(attempt + 1)  # the service thought it timed out: the same delivery again
                    return
            except requests.RequestException:
                pass
            attempt += 1
            time.sleep(RETRY_PAUSE)

    def slack(self, n: int) -> None:
        ts = f"1733{n:06d}.000100"
        body = event_fixture("event.app_mention.channel")
        body["event_id"] = f"Ev{uuid.uuid4().hex[:10].upper()}"
        body["event"].update(ts=ts, event_ts=ts, text=f"<@U0LAN0Z89> chaos task {n}", user=ADA_SLACK)
        raw = json.dumps(body)
        secret = self.cluster.secrets["slack_signing"]
        trigger = f"slack:{ts}"
        self.slack_threads[trigger] = ts

        def send(attempt: int) -> requests.Response:
            stamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "X-Slack-Request-Timestamp": stamp,
                "X-Slack-Signature": SignatureVerifier(secret).generate_signature(timestamp=stamp, body=raw),
            }
            if attempt:
                headers |= {"X-Slack-Retry-Num": str(attempt), "X-Slack-Retry-Reason": "http_error"}
            return requests.post(f"{self.cluster.url}/slack/events", data=raw, headers=headers, timeout=10)

        self._until_accepted(trigger, "slack", send)

    def linear(self, n: int) -> None:
        body = copy.deepcopy(payload("agent_session_event.created"))
        session = str(uuid.uuid4())
        body["agentSession"].update(id=session, commentId=str(uuid.uuid4()))
        trigger = f"linear:{session}"
        self.linear_sessions[trigger] = session
        secret = self.cluster.secrets["linear_webhook"].encode()

        def send(attempt: int) -> requests.Response:
            raw = json.dumps({**body, "webhookTimestamp": int(time.time() * 1000)}).encode()
            headers = {
                "Content-Type": "application/json",
                "Linear-Delivery": str(uuid.uuid4()),
                "Linear-Event": "AgentSessionEvent",
                "Linear-Signature": hmac.new(secret, raw, hashlib.sha256).hexdigest(),
            }
            return requests.post(f"{self.cluster.url}/linear/webhook", data=raw, headers=headers, timeout=10)

        self._until_accepted(trigger, "linear", send)

    def api(self, n: int) -> None:
        key = str(uuid.uuid4())
        headers = {"Authorization": f"Bearer {self.api_key}", "Idempotency-Key": key}

        def send(_attempt: int) -> requests.Response:
            body: dict = {"prompt": f"chaos task {n}"}
            if self.environment_id:
                body["config"] = {"environment_id": self.environment_id}
            return requests.post(f"{self.cluster.url}/api/v1/agent/runs", json=body, headers=headers, timeout=10)

        self._until_accepted(f"api:{key}", "api", send)


# --- what the suites check afterwards -------------------------------------------------------


def states_by_origin(store: Store) -> dict[str, RunState]:
    with store.reader() as session:
        return {r.origin_key: RunState(r.state) for r in session.execute(select(RunRow.origin_key, RunRow.state))}


def run_states(store: Store) -> dict[str, RunState]:
    with store.reader() as session:
        return {r.run_id: RunState(r.state) for r in session.execute(select(RunRow.run_id, RunRow.state))}


def wait_settled(store: Store, expected: int, timeout: float = 240) -> dict[str, RunState]:
    deadline = time.monotonic() + timeout
    states: dict[str, RunState] = {}
    while time.monotonic() < deadline:
        try:
            states = run_states(store)
        except Exception:
            time.sleep(1)
            continue
        if len(states) >= expected and all(s in TERMINAL_STATES for s in states.values()):
            return states
        time.sleep(1)
    return states


def slack_finals(cluster: Cluster, thread_ts: str) -> list[str]:
    """The closing posts in one thread (everything but the status message the bot edits)."""
    return [
        c.params.get("text", "")
        for c in cluster.slack.calls_to("chat.postMessage")
        if c.params.get("thread_ts") == thread_ts and c.params.get("text") != "On it"
    ]


def linear_finals(cluster: Cluster, session: str) -> list[dict]:
    return [a for a in cluster.linear.activities(session) if a.get("type") in ("response", "error")]
