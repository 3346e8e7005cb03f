"""The team GitHub App: enabled orgs, installation scope kept current by its (signed) webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from pathlib import Path

import httpx
import pytest
from github import Auth, Github, UnknownObjectException

from core import runs
from core.agents import default_agent
from core.github_orgs import enable_org, installation_for
from core.models import Principal
from core.models.wire import RunAgentRequest
from core.store import Store
from runner.context import WorkerContext
from runner.job import run_job
from tests.fakes.github import FakeGitHub
from tests.live_server import LiveServer
from tests.runner.test_execution import final
from tests.runner_support import Person, Remotes
from tests.support.credentials import WEBHOOK_SECRET
from tests.support.people import AGENT_LIMIT

FIXTURES = Path(__file__).parent / "fixtures"


def deliver(
    web: LiveServer,
    fixture: str,
    *,
    secret: str = WEBHOOK_SECRET,
    delivery: str | None = None,
    body: bytes | None = None,
) -> httpx.Response:
    event = fixture.split(".")[0]  # <event>.<action>[.<variant>].json, as every recorded payload
    raw = body if body is not None else (FIXTURES / fixture).read_bytes()
    signature = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return httpx.post(
        f"{web.url}/github/webhook",
        content=raw,
        headers={
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "X-Hub-Signature-256": signature,
            "Content-Type": "application/json",
        },
    )


def installation(store: Store, owner: str):
    with store.reader() as session:
        row = installation_for(session, owner)
        return None if row is None else (row.installation_id, row.repository_selection, row.repositories)


def test_installation_webhooks_keep_the_scope_current(web: LiveServer, store: Store):
    assert deliver(web, "installation.created.json").json()["handled"] == "installation created"
    assert installation(store, "Codertocat") == (957387, "selected", ["Codertocat/Hello-World"])
    deliver(web, "installation_repositories.added.json")
    assert installation(store, "Codertocat") == (957387, "selected", ["Codertocat/Hello-World", "Codertocat/Space"])
    payload = json.loads((FIXTURES / "installation.created.json").read_text())
    payload["action"] = "deleted"
    deliver(web, "installation.deleted.json", body=json.dumps(payload).encode())
    assert installation(store, "Codertocat") is None


def test_forged_duplicate_and_unknown_deliveries(web: LiveServer, store: Store):
    forged = deliver(web, "installation.created.json", secret="not-the-secret")
    assert forged.status_code == 401 and forged.json()["type"].endswith("/authentication-required/")  # problem+json
    assert installation(store, "Codertocat") is None  # nothing changed
    unsigned = httpx.post(f"{web.url}/github/webhook", content=b"{}", headers={"X-GitHub-Event": "installation"})
    assert unsigned.status_code == 401
    delivery = str(uuid.uuid4())
    assert deliver(web, "installation.created.json", delivery=delivery).json()["handled"]
    deliver(web, "installation_repositories.added.json")
    again = deliver(web, "installation.created.json", delivery=delivery)  # GitHub's redelivery
    assert again.json() == {"ok": True, "duplicate": delivery}
    assert installation(store, "Codertocat")[2] == ["Codertocat/Hello-World", "Codertocat/Space"]
    assert deliver(web, "ping.x.json", body=b'{"zen": "Keep it simple."}').json()["ignored"] == "ping"
    mystery = deliver(web, "mystery.x.json", body=b"{}")
    assert mystery.status_code == 400 and "unsupported event 'mystery'" in mystery.json()["detail"]
    assert deliver(web, "installation.x.json", body=b'{"action": "created"}').status_code == 400


@pytest.fixture
def agent_run(store: Store, alice: Person, make_env):
    def start(repos: list[str]) -> str:
        with store.session() as session:
            agent = default_agent(session, alice.principal.team_uid, AGENT_LIMIT)
        bot = Principal(kind="service_account", uid=agent.uid, team_uid=agent.team_uid)
        request = RunAgentRequest(prompt="nightly", config={"environment_id": make_env(repos=repos)})
        return runs.create(store, None, bot, request, agent_limit=AGENT_LIMIT).run.run_id

    return start


def test_agent_runs_need_the_org_enabled(
    ctx: WorkerContext, alice: Person, store: Store, remotes: Remotes, github: FakeGitHub, agent_run
):
    remotes.create("acme", "api")
    github.add_repo("acme", "api", installation_id=77)
    run_id = agent_run(["acme/api"])
    assert run_job(ctx, run_id) == "FAILED"
    status = final(store, run_id).status_message
    assert status.error_code == "external_authentication_required"
    assert status.message.startswith("GitHub orgs not enabled for this team hold the following repositories")
    assert github.calls == []  # refused before any GitHub call
    with store.session() as session:
        enable_org(session, alice.principal.team_uid, "acme")
    assert run_job(ctx, agent_run(["acme/api"])) == "SUCCEEDED"


def test_a_repo_outside_the_installation_is_refused_from_the_webhook_state(
    ctx: WorkerContext,
    alice: Person,
    store: Store,
    remotes: Remotes,
    github: FakeGitHub,
    web: LiveServer,
    agent_run,
):
    with store.session() as session:
        enable_org(session, alice.principal.team_uid, "Codertocat")
    deliver(web, "installation.created.json")  # selected: Hello-World only
    remotes.create("Codertocat", "Space")
    run_id = agent_run(["Codertocat/Space"])
    assert run_job(ctx, run_id) == "FAILED"
    assert final(store, run_id).status_message.message.startswith(
        "The GitHub App installation does not include the following repositories in the environment: Codertocat/Space"
    )
    deliver(web, "installation_repositories.added.json")  # now Space is added
    github.add_repo("Codertocat", "Space", installation_id=957387)
    assert run_job(ctx, agent_run(["Codertocat/Space"])) == "SUCCEEDED"


def test_installation_tokens_are_reused_until_near_expiry(
    ctx: WorkerContext, alice: Person, store: Store, remotes: Remotes, github: FakeGitHub, agent_run
):
    with store.session() as session:
        enable_org(session, alice.principal.team_uid, "acme")
    remotes.create("acme", "api")
    github.add_repo("acme", "api", installation_id=78)
    for _ in range(2):
        assert run_job(ctx, agent_run(["acme/api"])) == "SUCCEEDED"
    minted = [path for method, path, _c in github.calls if path == "/app/installations/78/access_tokens"]
    assert len(minted) == 1


def test_a_runs_installation_token_reaches_only_the_runs_repos(
    ctx: WorkerContext, alice: Person, store: Store, remotes: Remotes, github: FakeGitHub, agent_run
):
    """The installation covers ``acme/api`` and ``acme/billing``; a run on ``acme/api`` gets a
    token that cannot even read ``acme/billing``."""
    with store.session() as session:
        enable_org(session, alice.principal.team_uid, "acme")
    remotes.create("acme", "api")
    github.add_repo("acme", "api", installation_id=78, private=True)
    github.add_repo("acme", "billing", installation_id=78, private=True)

    assert run_job(ctx, agent_run(["acme/api"])) == "SUCCEEDED"

    [token] = [t for t, installation in github.installation_tokens.items() if installation == 78]
    assert github.token_repositories[token] == {"api"}
    client = Github(auth=Auth.Token(token), base_url=github.url, retry=None)
    assert client.get_repo("acme/api").full_name == "acme/api"
    with pytest.raises(UnknownObjectException):
        client.get_repo("acme/billing")
