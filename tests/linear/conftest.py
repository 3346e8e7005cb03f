"""Linear scenario fixtures: the real webhook handler and gql client in a live gateway, a fake
Linear GraphQL API on 127.0.0.1, and correctly signed deliveries of the recorded payloads."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from core import environments, integrations
from core.accounts import create_account
from core.identity import principal_of
from core.models import IntegrationProvider, Principal
from core.queue import RunQueue
from core.settings import Settings
from core.store import Store
from tests.fakes.linear import FakeLinear
from tests.images import QUEUED_ONLY_IMAGE
from tests.live_server import LiveServer, gateway_server
from tests.runner_support import settings_with
from tests.support.linear import DELEGATED_SESSION, FIXTURES, SESSION, LinearDelivery, cli_json, payload  # noqa: F401


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
def linear_integration(store: Store, ada: Principal) -> str:
    with store.session() as session:
        env = environments.create_environment(session, ada, name="web", docker_image=QUEUED_ONLY_IMAGE)
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
