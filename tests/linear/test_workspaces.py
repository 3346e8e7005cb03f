"""The Linear app installed in several workspaces (OAuth, ``actor=app``): a team admin installs it
at ``/linear/install``; each workspace's deliveries are answered with that workspace's own token
and its own app user; its refresh token rotates, renewed by one process at a time; a revoked
install shows in ``linear workspaces`` and ``integration list`` with what to do, and starts nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from sqlalchemy import select, text

from bots.linear import queries
from bots.linear.clients import LinearClients
from core.accounts import account_by_email, create_account
from core.keys import create_key
from core.models import Principal
from core.queue import RunQueue
from core.settings import Settings
from core.store import Store, utcnow
from core.store.tables import RunRow
from tests.fakes.linear import FakeLinear
from tests.live_server import LiveServer, gateway_server
from tests.runner_support import settings_with
from tests.support.linear import LinearDelivery, cli_json, payload
from tests.support.slack import run_count
from tests.support.waiting import wait_settled


@pytest.fixture
def install_settings(app_settings: Settings) -> Settings:
    return settings_with(app_settings, public_url=None)  # the callback is this live server's own address


@pytest.fixture
def gateway(install_settings: Settings, store: Store, queue: RunQueue) -> Iterator[LiveServer]:
    with gateway_server(install_settings, store, queue) as server:
        yield server


@pytest.fixture
def admin_key(store: Store, ada: Principal) -> str:
    with store.session() as session:
        return create_key(session, account_by_email(session, ada.email), "install")[1]


def install(gateway: LiveServer, fake: FakeLinear, key: str, organization: str) -> requests.Response:
    """An admin's browser: sign in, Linear's consent (approved), back to the gateway."""
    fake.approving = organization
    browser = requests.Session()
    return browser.post(f"{gateway.url}/linear/install", data={"api_key": key}, timeout=15)


def workspaces(settings: Settings) -> dict[str, dict]:
    return {w["organization_id"]: w for w in cli_json(settings, "linear", "workspaces")}


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def session_event(name: str, organization: str, session_id: str, **changes: object) -> dict:
    body = payload(name, organizationId=organization, **changes)
    body.pop("appUserId", None)  # the app user comes from the workspace's install, not the body
    body["agentSession"] = {**body["agentSession"], "id": session_id, "organizationId": organization}
    if body["agentSession"].get("commentId"):  # a mention of its own in each workspace
        body["agentSession"]["commentId"] = f"comment-{session_id}"
    return body


def age(store: Store, organization: str, expires_in: timedelta) -> None:
    """Time passes: the workspace's access token now runs out in ``expires_in`` (of its 24 hours)."""
    with store.session() as session:
        session.execute(
            text("UPDATE linear_tokens SET expires_at = :at, renewed_at = :renewed WHERE key = :key"),
            {"at": utcnow() + expires_in, "renewed": utcnow() - timedelta(hours=23), "key": f"org:{organization}"},
        )


def test_an_admin_installs_in_two_workspaces_and_each_is_answered_with_its_own_token(
    install_settings: Settings,
    gateway: LiveServer,
    webhook_secret: str,
    fake_linear: FakeLinear,
    store: Store,
    admin_key: str,
    linear_integration,
):
    acme, globex = fake_linear.add_organization("Acme"), fake_linear.add_organization("Globex")
    for organization, name in ((acme, "Acme"), (globex, "Globex")):
        page = install(gateway, fake_linear, admin_key, organization)
        assert page.status_code == 200 and f"Oz is installed in {name}" in page.text, page.text
    asked = fake_linear.authorize_requests[0]
    assert asked["actor"] == "app" and "app:mentionable" in asked["scope"] and "app:assignable" in asked["scope"]
    assert asked["redirect_uri"] == f"{gateway.url}/linear/oauth/callback"

    listed = workspaces(install_settings)
    assert {w["name"] for w in listed.values()} == {"Acme", "Globex"}
    assert listed[globex]["app_user_id"] == fake_linear.organizations[globex]["app_user"]
    assert all(w["token"].endswith("renewed automatically") for w in listed.values()), listed
    [linear] = [i for i in cli_json(install_settings, "integration", "list", "--email", "ada@acme.dev")]
    assert any(line.startswith("Globex: valid until") for line in linear["workspaces"])
    with store.session() as session:  # kept encrypted: no token Linear granted is in the store as is
        kept = json.dumps([list(map(str, r)) for r in session.execute(text("SELECT * FROM linear_tokens"))])
    assert not [t for t in fake_linear.granted if t in kept]

    deliver = LinearDelivery(f"{gateway.url}/linear/webhook", webhook_secret)
    before = len(fake_linear.operations)
    assert deliver.post(session_event("agent_session_event.created", globex, "session-globex")).status_code == 200
    wait_for(lambda: run_count(store) == 1 and fake_linear.calls("agentSessionUpdate"))
    from_globex = fake_linear.operations[before:]
    assert {fake_linear.workspace_of(o) for o in from_globex} == {globex}, [o.field for o in from_globex]
    assert fake_linear.activities("session-globex")[0]["type"] == "thought"
    with store.session() as session:
        ref = session.scalars(select(RunRow.origin)).one()["ref"]
    assert ref["org"] == globex and ref["session"] == "session-globex"

    # The app's own activity in Globex (its app user there) is never acted on.
    mine = session_event(
        "agent_session_event.prompted",
        globex,
        "session-globex",
        agentActivity={"id": "act-own", "userId": fake_linear.organizations[globex]["app_user"], "content": {}},
    )
    before = len(fake_linear.operations)
    assert deliver.post(mine).status_code == 200
    wait_settled(store)
    assert [o.field for o in fake_linear.operations[before:]] == [] and run_count(store) == 1

    before = len(fake_linear.operations)
    assert deliver.post(session_event("agent_session_event.created", acme, "session-acme")).status_code == 200
    wait_for(lambda: run_count(store) == 2 and len(fake_linear.calls("agentSessionUpdate")) == 2)
    assert {fake_linear.workspace_of(o) for o in fake_linear.operations[before:]} == {acme}


async def test_a_rotating_refresh_token_is_spent_by_one_process_and_both_get_the_new_token(
    install_settings: Settings, gateway: LiveServer, fake_linear: FakeLinear, store: Store, admin_key: str
):
    acme = fake_linear.add_organization("Acme")
    assert install(gateway, fake_linear, admin_key, acme).status_code == 200
    age(store, acme, timedelta(minutes=30))  # inside the renewal window, still valid
    web, reporter = (LinearClients(install_settings, store, ThreadPoolExecutor(2)) for _ in range(2))
    clients = [await web.for_workspace(acme), await reporter.for_workspace(acme)]
    await asyncio.gather(*(c.execute(queries.VIEWER) for c in clients))
    assert fake_linear.refresh_grants == 1  # a refresh token works once: two refreshes would lock one out

    age(store, acme, timedelta(seconds=-5))  # the gateway slept through the token's end
    await asyncio.gather(*(c.execute(queries.VIEWER) for c in clients))
    assert fake_linear.refresh_grants == 2
    newest = fake_linear.granted[-1]
    later = [o.authorization.removeprefix("Bearer ") for o in fake_linear.calls("viewer")[-2:]]
    assert later == [newest, newest]  # the one that waited used what the other renewed
    await web.close()
    await reporter.close()
    assert workspaces(install_settings)[acme]["token"].endswith("renewed automatically")


def test_a_revoked_workspace_starts_nothing_and_says_how_to_fix_it(
    install_settings: Settings,
    gateway: LiveServer,
    webhook_secret: str,
    fake_linear: FakeLinear,
    store: Store,
    queue: RunQueue,
    admin_key: str,
    linear_integration,
):
    acme, globex = fake_linear.add_organization("Acme"), fake_linear.add_organization("Globex")
    for organization in (acme, globex):
        assert install(gateway, fake_linear, admin_key, organization).status_code == 200
    fake_linear.revoke(acme)
    age(store, acme, timedelta(seconds=-5))
    deliver = LinearDelivery(f"{gateway.url}/linear/webhook", webhook_secret)
    before = len(fake_linear.operations)
    assert deliver.post(session_event("agent_session_event.created", acme, "session-acme")).status_code == 200
    wait_for(lambda: "no token" in workspaces(install_settings)[acme]["token"])  # recorded, then the handling stops
    assert run_count(store) == 0 and queue.queue.count == 0
    assert fake_linear.operations[before:] == []  # nothing went to Linear, least of all with another token
    status = workspaces(install_settings)[acme]["token"]
    assert "invalid_grant" in status.lower() or "Invalid grant" in status
    assert status.endswith("an admin installs the app again at /linear/install"), status

    # Linear says the app left Globex: its tokens go at once, and the list says so.
    revoked = {"type": "OAuthApp", "action": "revoked", "organizationId": globex}
    assert deliver.post(revoked | {"oauthClientId": fake_linear.client_id}).status_code == 200
    wait_for(lambda: "uninstalled" in workspaces(install_settings)[globex]["token"])


def test_only_an_admin_installs_and_only_in_the_browser_that_started(
    install_settings: Settings, gateway: LiveServer, fake_linear: FakeLinear, store: Store, admin_key: str
):
    acme = fake_linear.add_organization("Acme")
    with store.session() as session:
        member = create_account(session, "bob@acme.dev", "acme")
        member_key = create_key(session, member, "laptop")[1]
    refused = install(gateway, fake_linear, member_key, acme)
    assert refused.status_code == 403 and "only a team admin" in refused.text
    assert fake_linear.authorize_requests == []

    fake_linear.approving = acme
    started = requests.post(
        f"{gateway.url}/linear/install", data={"api_key": admin_key}, allow_redirects=False, timeout=10
    )
    assert started.status_code == 303 and "HttpOnly" in started.headers["Set-Cookie"]
    consent = requests.get(started.headers["Location"], allow_redirects=False, timeout=10)
    foreign = requests.get(consent.headers["Location"], timeout=10)  # no cookie: another browser
    assert foreign.status_code == 403 and "browser you started in" in foreign.text
    assert workspaces(install_settings) == {}

    fake_linear.approving = None  # the workspace admin declines
    declined = requests.Session().post(f"{gateway.url}/linear/install", data={"api_key": admin_key}, timeout=10)
    assert declined.status_code == 400 and "access_denied" in declined.text
    assert workspaces(install_settings) == {}


def test_without_the_apps_credentials_there_is_no_install_page(linear_gateway: LiveServer):
    page = requests.get(f"{linear_gateway.url}/linear/install", timeout=10)
    assert page.status_code == 404 and "OZGW_LINEAR_CLIENT_ID" in page.text
