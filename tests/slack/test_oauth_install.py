"""Several workspaces: a workspace installs the app through Slack OAuth (/slack/install), its
installation is kept in the store with its token encrypted, and its events are then handled
with that workspace's own bot token."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import pytest
import requests
from sqlalchemy import select

from core.queue import RunQueue
from core.settings import Settings
from core.store import Store
from core.store.tables import SLACK_BOTS, SLACK_INSTALLATIONS
from tests.fakes.slack import BOT_USER, TEAM, FakeSlack
from tests.live_server import LiveServer, gateway_server
from tests.runner_support import settings_with
from tests.support.slack import SlackDelivery, all_runs, event
from tests.support.waiting import wait_for


@pytest.fixture
def oauth_gateway(
    settings: Settings, fake_slack: FakeSlack, signing_secret: str, store: Store, queue: RunQueue
) -> Iterator[LiveServer]:
    oauth = settings_with(
        settings,
        slack_signing_secret=signing_secret,
        slack_client_id="1111.2222",
        slack_client_secret=secrets.token_hex(16),
        slack_api_url=fake_slack.api_url,
        public_url="https://gateway.test",
    )
    with gateway_server(oauth, store, queue) as server:
        yield server


def test_install_then_events_use_the_workspace_token(
    oauth_gateway: LiveServer, fake_slack: FakeSlack, signing_secret: str, store: Store, linked_ada, slack_integration
) -> None:
    installed_token = "xoxb-" + secrets.token_hex(12)
    fake_slack.oauth_grants["code-1"] = {
        "ok": True,
        "access_token": installed_token,
        "token_type": "bot",
        "scope": "app_mentions:read,chat:write",
        "bot_user_id": BOT_USER,
        "app_id": "A0MDYCDME",
        "team": {"name": "Acme", "id": TEAM},
        "enterprise": None,
        "authed_user": {"id": "U061F7AUR"},
        "is_enterprise_install": False,
    }
    page = requests.get(f"{oauth_gateway.url}/slack/install", timeout=10)
    assert page.status_code == 200
    state = re.search(r"state=([A-Za-z0-9_-]+)", page.text).group(1)
    assert "client_id=1111.2222" in page.text
    cookie = page.headers["Set-Cookie"].split(";")[0]  # a browser sends it back (the page is https in production)

    forged = requests.get(
        f"{oauth_gateway.url}/slack/oauth_redirect", params={"code": "code-1", "state": "forged"}, timeout=10
    )
    assert forged.status_code == 400
    done = requests.get(
        f"{oauth_gateway.url}/slack/oauth_redirect",
        params={"code": "code-1", "state": state},
        headers={"Cookie": cookie},
        timeout=10,
    )
    assert done.status_code == 200, done.text
    with store.reader() as session:
        stored = session.execute(select(SLACK_BOTS.c.bot_token, SLACK_BOTS.c.team_id)).one()
        assert session.execute(select(SLACK_INSTALLATIONS.c.team_id)).scalar_one() == TEAM
    assert stored.team_id == TEAM
    assert installed_token not in stored.bot_token  # encrypted at rest

    deliver = SlackDelivery(f"{oauth_gateway.url}/slack/events", signing_secret)
    assert deliver.post(event("event.app_mention.thread")).status_code == 200
    wait_for(lambda: all_runs(store), what="the run")
    posted = wait_for(lambda: fake_slack.calls_to("chat.postMessage"), what="On it")[0]
    assert posted.token == installed_token


def test_install_page_is_absent_for_a_single_workspace_app(slack_gateway: LiveServer) -> None:
    assert requests.get(f"{slack_gateway.url}/slack/install", timeout=10).status_code == 404
