"""Slack scenario fixtures: the real bolt app inside a live gateway, a fake Slack on 127.0.0.1,
correctly signed deliveries of the recorded payloads, and a person linked to a Slack user."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import environments, identity, integrations
from core.accounts import create_account
from core.keys import create_key
from core.models import IntegrationProvider, Principal
from core.queue import RunQueue
from core.settings import Settings
from core.store import Store
from tests.fakes.slack import TEAM, FakeSlack
from tests.images import QUEUED_ONLY_IMAGE
from tests.live_server import LiveServer, gateway_server
from tests.runner_support import settings_with, start_reporter
from tests.support.slack import ADA, SlackDelivery, all_runs, event, run_count  # noqa: F401


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    fake = FakeSlack().start()
    yield fake
    fake.stop()


@pytest.fixture
def signing_secret() -> str:
    return secrets.token_hex(16)


@pytest.fixture
def bot_token() -> str:
    return "xoxb-" + secrets.token_hex(12)


@pytest.fixture
def slack_settings(settings: Settings, fake_slack: FakeSlack, signing_secret: str, bot_token: str) -> Settings:
    return settings_with(
        settings,
        slack_signing_secret=signing_secret,
        slack_bot_token=bot_token,
        slack_api_url=fake_slack.api_url,
        report_interval_seconds=0.2,
        public_url="http://gateway.test",
    )


@pytest.fixture
def slack_gateway(slack_settings: Settings, store: Store, queue: RunQueue) -> Iterator[LiveServer]:
    with gateway_server(slack_settings, store, queue) as server:
        yield server


@pytest.fixture
def deliver(slack_gateway: LiveServer, signing_secret: str) -> SlackDelivery:
    return SlackDelivery(f"{slack_gateway.url}/slack/events", signing_secret)


@pytest.fixture
def ada(store: Store) -> Principal:
    """Ada, with an account on the gateway and a personal key (not yet linked to Slack)."""
    with store.session() as session:
        account = create_account(session, "ada@acme.dev", "acme", display_name="Ada Lovelace")
    return identity.principal_of(account)


@pytest.fixture
def ada_key(store: Store, ada: Principal) -> str:
    from core.accounts import account_by_email

    with store.session() as session:
        return create_key(session, account_by_email(session, ada.email), "laptop")[1]


@pytest.fixture
def linked_ada(store: Store, ada: Principal) -> Principal:
    with store.session() as session:
        identity.link(session, IntegrationProvider.SLACK, TEAM, ADA, ada.uid)
    return ada


@pytest.fixture
def environment_id(store: Store, ada: Principal) -> str:
    """An environment runs are queued for; its image is never started by these tests (the ones
    that execute runs build their own), so they need no Docker engine."""
    with store.session() as session:
        return environments.create_environment(session, ada, name="web", docker_image=QUEUED_ONLY_IMAGE).uid


@pytest.fixture
def slack_integration(store: Store, ada: Principal, environment_id: str) -> str:
    with store.session() as session:
        integrations.create_integration(
            session, ada, IntegrationProvider.SLACK, environment_id=environment_id, prompt="Keep changes small."
        )
    return environment_id


@pytest.fixture
def e2e_settings(runner_settings: Settings, fake_slack: FakeSlack, signing_secret: str, bot_token: str) -> Settings:
    return settings_with(
        runner_settings,
        slack_signing_secret=signing_secret,
        slack_bot_token=bot_token,
        slack_api_url=fake_slack.api_url,
        report_interval_seconds=0.3,
    )


@pytest.fixture
def e2e_gateway(e2e_settings: Settings, store: Store, queue: RunQueue) -> Iterator[LiveServer]:
    with gateway_server(e2e_settings, store, queue) as server:
        yield server


@pytest.fixture
def reporter_process(tmp_path: Path, e2e_settings: Settings, database_url: str, queue: RunQueue) -> Iterator[None]:
    process = start_reporter(
        tmp_path,
        database_url,
        queue,
        OZGW_PUBLIC_URL=e2e_settings.public_url,
        OZGW_SLACK_SIGNING_SECRET=e2e_settings.slack_signing_secret.get_secret_value(),
        OZGW_SLACK_BOT_TOKEN=e2e_settings.slack_bot_token.get_secret_value(),
        OZGW_SLACK_API_URL=e2e_settings.slack_api_url,
    )
    yield
    process.terminate()
    process.wait(30)
