"""Linear scenario fixtures: the real webhook handler and gql client in a live gateway, a fake
Linear GraphQL API on 127.0.0.1, and correctly signed deliveries of the recorded payloads."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from core import environments, integrations
from core.accounts import create_account
from core.identity import principal_of
from core.models import IntegrationProvider, Principal
from core.queue import RunQueue
from core.settings import Settings
from core.store import Store
from tests.fakes.linear import FakeLinear
from tests.live_server import LiveServer, gateway_server
from tests.runner_support import settings_with

FIXTURES = Path(__file__).parent / "fixtures"
SESSION = "4d23d4ad-b4bb-4ef1-853f-c9c03439d37d"
DELEGATED_SESSION = "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d"


def payload(name: str, **changes: object) -> dict:
    body = copy.deepcopy(json.loads((FIXTURES / f"{name}.json").read_text()))
    body.update(changes)
    body.setdefault("webhookTimestamp", 0)
    return body


class LinearDelivery:
    def __init__(self, url: str, secret: str) -> None:
        self.url = url
        self.secret = secret

    def post(
        self, body: dict, *, fresh: bool = True, signature: str | None = None, delivery: str | None = None
    ) -> requests.Response:
        if fresh:
            body = {**body, "webhookTimestamp": int(time.time() * 1000)}
        raw = json.dumps(body).encode()
        headers = {
            "Content-Type": "application/json",
            "Linear-Delivery": delivery or str(uuid.uuid4()),
            "Linear-Event": body.get("type", ""),
            "Linear-Signature": signature or hmac.new(self.secret.encode(), raw, hashlib.sha256).hexdigest(),
        }
        return requests.post(self.url, data=raw, headers=headers, timeout=10)


@pytest.fixture
def fake_linear() -> Iterator[FakeLinear]:
    fake = FakeLinear().start()
    yield fake
    fake.stop()


@pytest.fixture
def webhook_secret() -> str:
    return "lin_wh_" + secrets.token_hex(16)


@pytest.fixture
def linear_token() -> str:
    return secrets.token_hex(20)


@pytest.fixture
def linear_settings(settings: Settings, fake_linear: FakeLinear, webhook_secret: str, linear_token: str) -> Settings:
    return settings_with(
        settings,
        linear_webhook_secret=webhook_secret,
        linear_access_token=linear_token,
        linear_api_url=fake_linear.url,
        public_url="http://gateway.test",
        report_interval_seconds=0.2,
    )


@pytest.fixture
def linear_gateway(linear_settings: Settings, store: Store, queue: RunQueue) -> Iterator[LiveServer]:
    with gateway_server(linear_settings, store, queue) as server:
        yield server


@pytest.fixture
def deliver(linear_gateway: LiveServer, webhook_secret: str) -> LinearDelivery:
    return LinearDelivery(f"{linear_gateway.url}/linear/webhook", webhook_secret)


@pytest.fixture
def ada(store: Store) -> Principal:
    with store.session() as session:
        return principal_of(create_account(session, "ada@acme.dev", "acme", display_name="Ada Lovelace"))


@pytest.fixture
def linear_integration(store: Store, ada: Principal, test_image: str) -> str:
    with store.session() as session:
        env = environments.create_environment(session, ada, name="web", docker_image=test_image)
        integrations.create_integration(
            session, ada, IntegrationProvider.LINEAR, environment_id=env.uid, prompt="Keep changes small."
        )
    return env.uid


@pytest.fixture
def app_settings(linear_settings: Settings, fake_linear: FakeLinear) -> Settings:
    """The gateway with the Linear app's own credentials (no fixed token), and a Linear that
    answers only the tokens it granted."""
    fake_linear.require_token = True
    return settings_with(
        linear_settings,
        linear_access_token=None,
        linear_client_id=fake_linear.client_id,
        linear_client_secret=fake_linear.client_secret,
        linear_token_url=fake_linear.token_url,
        linear_authorize_url=f"{fake_linear.server.url}/oauth/authorize",
    )


def cli_json(settings: Settings, *args: str) -> list[dict] | dict:
    """``oz-gateway --output-format json ARGS`` against this test's store, in-process."""
    from click.testing import CliRunner

    from cli.main import main as cli
    from core.settings import get_settings

    secret = settings.linear_client_secret
    env = {
        "OZGW_DATABASE_URL": settings.effective_database_url,
        "OZGW_DATA_DIR": str(settings.data_dir),
        "OZGW_LINEAR_CLIENT_ID": settings.linear_client_id or "",
        "OZGW_LINEAR_CLIENT_SECRET": secret.get_secret_value() if secret else "",
    }
    get_settings.cache_clear()  # the CLI reads its settings once per process: this test's, please
    try:
        result = CliRunner().invoke(cli, ["--output-format", "json", *args], env=env)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    return json.loads(result.output)
