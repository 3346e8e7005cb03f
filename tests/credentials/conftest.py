"""Credential tests reuse the runner's fixtures, plus a gateway configured for GitHub sign-in
and the App's webhooks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.queue import RunQueue
from core.settings import Settings
from core.store import Store
from tests.fakes.github import FakeGitHub
from tests.live_server import LiveServer, gateway_server
from tests.runner_support import settings_with
from tests.support.credentials import OAUTH_CLIENT, WEBHOOK_SECRET


@pytest.fixture
def web_settings(runner_settings: Settings, github: FakeGitHub) -> Settings:
    github.oauth_client = OAUTH_CLIENT
    return settings_with(
        runner_settings,
        public_url=None,
        github_oauth_client_id=OAUTH_CLIENT[0],
        github_oauth_client_secret=OAUTH_CLIENT[1],
        github_webhook_secret=WEBHOOK_SECRET,
    )


@pytest.fixture
def web(web_settings: Settings, store: Store, queue: RunQueue) -> Iterator[LiveServer]:
    with gateway_server(web_settings, store, queue) as server:
        yield server


import pytest  # noqa: E402

from tests.runner_support import Person  # noqa: E402


@pytest.fixture
def alice(runner_alice: Person) -> Person:
    """Here ``alice`` is the runner's person: an account with a GitHub authorization."""
    return runner_alice
