"""An unlinked Slack user is asked, privately, to link their account; once they have, the
request they made runs without being asked again.  Nobody runs under someone else's name."""

from __future__ import annotations

import re

import requests

from core import identity
from core.models import IntegrationProvider, Principal
from core.store import Store
from tests.fakes.slack import TEAM, FakeSlack
from tests.live_server import LiveServer
from tests.support.slack import ADA, SlackDelivery, all_runs, event
from tests.support.waiting import wait_for


def _link_url(fake_slack: FakeSlack) -> str:
    ephemeral = wait_for(lambda: fake_slack.calls_to("chat.postEphemeral"), what="the ephemeral link")[0].params
    assert ephemeral["user"] == ADA
    button = ephemeral["blocks"][1]["elements"][0]
    assert button["text"]["text"] == "Link your account"
    assert button["url"].startswith("http://gateway.test/link/slack?token=")
    return button["url"]


def _local(url: str, gateway: LiveServer) -> str:
    return url.replace("http://gateway.test", gateway.url)


def test_unlinked_user_links_and_their_request_then_runs(
    deliver: SlackDelivery,
    fake_slack: FakeSlack,
    store: Store,
    slack_gateway: LiveServer,
    ada: Principal,
    ada_key: str,
    slack_integration: str,
) -> None:
    assert deliver.post(event("event.app_mention.thread")).status_code == 200
    url = _link_url(fake_slack)
    assert all_runs(store) == []
    assert fake_slack.calls_to("reactions.add") == []  # nothing public happens for an unknown person

    page = requests.get(_local(url, slack_gateway), timeout=10)
    assert page.status_code == 200
    assert "Link your Slack account" in page.text
    assert "You are letting Slack user Ada Lovelace (workspace Acme) act as your account" in page.text
    token = re.search(r"name='token' value='([^']+)'", page.text).group(1)

    wrong = requests.post(f"{slack_gateway.url}/link/slack", data={"token": token, "api_key": "wk-nope"}, timeout=10)
    assert wrong.status_code == 401
    with store.reader() as session:
        assert identity.linked_account(session, IntegrationProvider.SLACK, TEAM, ADA) is None

    done = requests.post(f"{slack_gateway.url}/link/slack", data={"token": token, "api_key": ada_key}, timeout=10)
    assert done.status_code == 200
    assert "Slack user Ada Lovelace (workspace Acme) now acts as ada@acme.dev" in done.text
    run = wait_for(lambda: all_runs(store), what="the parked request's run")[0]
    assert run.creator_uid == ada.uid
    assert "can you take this one?" in run.prompt
    assert wait_for(lambda: fake_slack.calls_to("reactions.add"), what=":eyes:")
    with store.reader() as session:
        assert identity.linked_account(session, IntegrationProvider.SLACK, TEAM, ADA).uid == ada.uid

    again = requests.post(f"{slack_gateway.url}/link/slack", data={"token": token, "api_key": ada_key}, timeout=10)
    assert again.status_code == 403  # single use
    assert len(all_runs(store)) == 1


def test_link_token_cannot_be_forged(slack_gateway: LiveServer, store: Store, ada: Principal, ada_key: str) -> None:
    with store.session() as session:
        uid = identity.park_request(session, IntegrationProvider.SLACK, TEAM, "U0EVE", {"team": TEAM})
    forged = f"{uid}.0000"
    page = requests.get(f"{slack_gateway.url}/link/slack", params={"token": forged}, timeout=10)
    assert page.status_code == 403
    post = requests.post(f"{slack_gateway.url}/link/slack", data={"token": forged, "api_key": ada_key}, timeout=10)
    assert post.status_code == 403
    with store.reader() as session:
        assert identity.linked_account(session, IntegrationProvider.SLACK, TEAM, "U0EVE") is None
