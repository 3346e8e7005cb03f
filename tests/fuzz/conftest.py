"""One gateway with every front door open (Slack, Linear, GitHub webhook and OAuth, the API),
its secrets known to the tests so they can check none is ever echoed."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from core.queue import RunQueue
from core.settings import Settings
from core.store import Store
from tests.fakes.github import FakeGitHub
from tests.fakes.linear import FakeLinear
from tests.fakes.slack import FakeSlack
from tests.live_server import gateway_server
from tests.runner_support import settings_with
from tests.support.fuzz import OpenGateway, row_counts  # noqa: F401


@pytest.fixture
def open_gateway(settings: Settings, store: Store, queue: RunQueue) -> Iterator[OpenGateway]:
    slack, linear, github = FakeSlack().start(), FakeLinear().start(), FakeGitHub().start()
    held = {
        "slack_signing_secret": secrets.token_hex(16),
        "slack_bot_token": "xoxb-" + secrets.token_hex(12),
        "linear_webhook_secret": "lin_wh_" + secrets.token_hex(16),
        "linear_access_token": secrets.token_hex(20),
        "github_webhook_secret": secrets.token_hex(16),
        "github_oauth_client_secret": secrets.token_hex(20),
        "linear_client_secret": linear.client_secret,
    }
    configured = settings_with(
        settings,
        **held,
        slack_api_url=slack.api_url,
        linear_api_url=linear.url,
        github_api_url=github.url,
        github_oauth_client_id="Iv1.fuzz",
        linear_client_id=linear.client_id,  # the install flow and its callback are fuzzed too
        linear_token_url=linear.token_url,
        public_url="http://gateway.test",
    )
    try:
        with gateway_server(configured, store, queue) as server:
            yield OpenGateway(server, configured, [*held.values(), configured.secret_key.get_secret_value()])
    finally:
        for fake in (slack, linear, github):
            fake.stop()
