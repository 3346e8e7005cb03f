"""The small holes: each closed, each with its test."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid

import httpx
import pytest

from core import environments
from core.errors import OzError
from core.models import RepoRef
from core.settings import Settings
from core.store import Store
from tests.live_server import LiveServer, gateway_server
from tests.runner_support import settings_with
from tests.support.people import AGENT_LIMIT, Person, add_file_artifact


def test_only_an_agent_key_may_declare_a_github_action_run(alice: Person, gateway: LiveServer):
    response = httpx.post(
        f"{gateway.api_url}/agent/runs",
        json={"prompt": "x"},
        headers={"Authorization": f"Bearer {alice.key}", "X-Oz-Source": "GITHUB_ACTION"},
    )
    assert response.status_code == 403  # else a person could make their run uncancellable


def test_a_clients_idempotency_key_cannot_claim_a_slack_messages_run(alice: Person, store: Store, gateway: LiveServer):
    from core import runs
    from core.models.wire import RunAgentRequest

    slack_key = "slack:T061EG9R6:C0LAN2Q65:1732320100.000200"
    planted = alice.client.agent.run(prompt="planted", extra_headers={"Idempotency-Key": slack_key})
    from_slack = runs.create(
        store,
        None,
        alice_principal(alice),
        RunAgentRequest(prompt="real"),
        idempotency_key=slack_key,
        agent_limit=AGENT_LIMIT,
    )
    assert from_slack.created and from_slack.run.run_id != planted.run_id


def alice_principal(person: Person):
    from core.models import Principal

    return Principal(kind="user", uid=person.account.uid, team_uid=person.account.team_uid)


@pytest.mark.parametrize("spec", ["./api", "acme/..", "../x", "acme/."])
def test_dot_repo_names_are_refused(spec: str, alice: Person, store: Store):
    with pytest.raises(ValueError):
        RepoRef.parse(spec)
    with store.session() as session, pytest.raises(OzError):
        environments.create_environment(session, alice_principal(alice), name="e", docker_image="x", repos=[spec])


def test_a_replayed_github_delivery_under_a_new_id_is_a_duplicate(settings: Settings, store: Store, queue):
    secret = "gh-" + uuid.uuid4().hex
    with gateway_server(settings_with(settings, github_webhook_secret=secret), store, queue) as server:
        body = json.dumps(
            {
                "action": "created",
                "installation": {"id": 5, "account": {"login": "acme"}, "repository_selection": "all"},
                "repositories": [],
            }
        ).encode()
        signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()

        def post(delivery: str) -> dict:
            headers = {
                "X-Hub-Signature-256": signature,
                "X-GitHub-Event": "installation",
                "X-GitHub-Delivery": delivery,
                "Content-Type": "application/json",
            }
            return httpx.post(f"{server.url}/github/webhook", content=body, headers=headers).json()

        assert "handled" in post("d-1")
        assert post("d-2-forged")["duplicate"] == "d-2-forged"


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000 + b"]" * 100_000, b'{"prompt": "\xff\xfe"}', b'{"prompt": "x"', b"\x00\x01"],
    ids=["deeply-nested", "invalid-utf8", "truncated", "binary"],
)
def test_hostile_json_bodies_are_a_400_not_a_500(alice: Person, gateway: LiveServer, body: bytes):
    response = httpx.post(
        f"{gateway.api_url}/agent/runs",
        content=body,
        headers={"Authorization": f"Bearer {alice.key}", "Content-Type": "application/json; charset=bogus"},
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


def test_two_runs_refreshing_one_rotating_token_leave_it_usable(store: Store, settings: Settings):
    from datetime import timedelta

    from core.accounts import create_account
    from core.github_auth import authorization_for, save_authorization
    from core.store import utcnow
    from core.vault import Vault

    vault = Vault.from_settings(settings)
    with store.session() as session:
        person = create_account(session, "rota@example.com", "rota")
        save_authorization(session, vault, person.uid, "rota-gh", "old", "refresh-1", utcnow() - timedelta(minutes=1))
    seen: list[object] = []

    def refused(_token: str):
        raise RuntimeError("bad_refresh_token")  # GitHub: this refresh token was already used

    def first(token: str):
        assert token == "refresh-1"
        seen.append(authorization_for(store, vault, person.uid, refused))  # the other run, mid-refresh
        return "new", "refresh-2", utcnow() + timedelta(hours=8)

    assert authorization_for(store, vault, person.uid, first).token == "new"
    with store.reader() as session:
        from core.github_auth import status

        assert status(session, person.uid)["stale"] is False
    assert authorization_for(store, vault, person.uid, refused).token == "new"  # and it stays usable


def test_an_artifacts_agent_chosen_name_and_type_cannot_forge_headers_or_become_a_page(alice: Person, store: Store):
    from urllib.parse import unquote

    run_id = alice.client.agent.run(prompt="make a report").run_id
    name = 'report"; filename="evil.html\r\nSet-Cookie: session=stolen; ü.html'
    uid = add_file_artifact(store, run_id, name, b"<script>alert(document.cookie)</script>", "text/html")
    download = httpx.get(alice.client.agent.get_artifact(uid).data.download_url)

    assert download.status_code == 200
    assert "set-cookie" not in download.headers
    disposition = download.headers["content-disposition"]
    assert disposition.startswith("attachment; ") and disposition.count('"') == 2
    assert "\r" not in disposition and "\n" not in disposition
    assert unquote(disposition.split("filename*=UTF-8''", 1)[1]) == name  # the real name survives, encoded
    assert download.headers["x-content-type-options"] == "nosniff"  # never sniffed into a page
    assert download.headers["content-security-policy"] == "sandbox"  # and no script runs if opened


def test_a_linear_api_that_never_answers_fails_the_call_instead_of_hanging():
    import asyncio
    import socket
    import time

    from gql.transport.exceptions import TransportError

    from bots.linear import client as linear_client
    from bots.linear.queries import VIEWER

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts the connection (the kernel does), never answers

    async def call() -> None:
        linear = linear_client.LinearClient(f"http://127.0.0.1:{silent.getsockname()[1]}/graphql", "lin_api_test", 1)
        try:
            await linear.execute(VIEWER)
        finally:
            await linear.close()

    started = time.monotonic()
    with pytest.raises((TimeoutError, TransportError)):  # gql reports the timeout as a transport failure
        asyncio.run(call())
    assert time.monotonic() - started < 10
    silent.close()


def test_postgresql_connections_have_connect_and_statement_timeouts(pg_database: str):
    import socket
    import time

    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from core.store.engine import make_engine

    with make_engine(pg_database).connect() as conn:
        assert conn.execute(text("SHOW statement_timeout")).scalar() == "2min"

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # a wedged server: the TCP handshake completes, nothing more
    wedged = make_engine(f"postgresql://oz@127.0.0.1:{silent.getsockname()[1]}/oz")
    started = time.monotonic()
    with pytest.raises(OperationalError, match="timeout"):
        wedged.connect()
    assert time.monotonic() - started < 30
    silent.close()
