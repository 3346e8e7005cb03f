"""Bounded resources at the front doors: webhook bodies are capped and unsigned deliveries are
refused before their body is read; ``/healthz`` never stalls the event loop on a slow Redis."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
from redis.backoff import NoBackoff
from redis.retry import Retry

from core.queue import RunQueue
from core.settings import Settings
from core.store import Store
from tests.live_server import LiveServer, gateway_server
from tests.runner_support import settings_with

WEBHOOKS = [
    ("/slack/events", "X-Slack-Signature"),
    ("/linear/webhook", "Linear-Signature"),
    ("/github/webhook", "X-Hub-Signature-256"),
]


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def front(settings: Settings, store: Store, queue: RunQueue) -> Iterator[LiveServer]:
    configured = settings_with(
        settings,
        slack_signing_secret="s" * 32,
        slack_bot_token="xoxb-test",
        slack_api_url="http://127.0.0.1:9/api/",
        linear_webhook_secret="l" * 32,
        linear_access_token="lin-test",
        github_webhook_secret="g" * 32,
    )
    with gateway_server(configured, store, queue) as server:
        yield server


def raw_request(port: int, head: str, body: bytes = b"") -> str:
    """Send the request head (and maybe part of a body) and read what the server answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(head.encode() + body)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = conn.recv(65536)
            if not chunk:
                break
            received += chunk
        return received.decode("latin-1")


@pytest.mark.parametrize(("path", "header"), WEBHOOKS)
def test_an_unsigned_delivery_is_refused_before_its_body_is_read(front: LiveServer, path: str, header: str):
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50000000\r\n\r\n"
    answer = raw_request(front.port, head)  # 50 MB announced, not one byte sent: the answer comes anyway
    assert answer.startswith("HTTP/1.1 401"), answer[:200]
    assert header in answer


@pytest.mark.parametrize(("path", "header"), WEBHOOKS)
def test_a_delivery_announcing_more_than_a_mebibyte_is_refused_unread(front: LiveServer, path: str, header: str):
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{header}: v0=abc\r\n"
        "Content-Length: 2000000\r\n\r\n"
    )
    answer = raw_request(front.port, head)
    assert answer.startswith("HTTP/1.1 413"), answer[:200]


@pytest.mark.parametrize(("path", "header"), WEBHOOKS)
def test_a_chunked_body_stops_at_the_limit(front: LiveServer, path: str, header: str):
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b" " * 65536  # 2.5 MiB in all, no length announced

    response = requests.post(front.url + path, data=chunks(), headers={header: "v0=abc"}, timeout=30)
    assert response.status_code == 413


class SilentRedis:
    """A TCP server that accepts connections and never answers: Redis on a very bad day."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_a_silent_redis_does_not_stall_other_routes(settings: Settings, store: Store):
    silent = SilentRedis()
    stalled = RunQueue(
        redis.Redis(host="127.0.0.1", port=silent.port, socket_timeout=2, retry=Retry(NoBackoff(), 0)), "stalled"
    )
    try:
        with gateway_server(settings, store, stalled) as server:
            health: list[requests.Response] = []
            probe = threading.Thread(target=lambda: health.append(requests.get(server.url + "/healthz", timeout=60)))
            probe.start()
            while not silent.held:  # the ping has reached the silent Redis and waits there
                threading.Event().wait(0.01)
            document = requests.get(server.url + "/api/v1/openapi.json", timeout=30)
            assert document.status_code == 200 and "paths" in document.json()
            assert not health, "the OpenAPI document waited for the Redis ping"
            probe.join(60)
            assert health[0].status_code == 200 and json.loads(health[0].text)["queue"] is False
    finally:
        silent.close()
