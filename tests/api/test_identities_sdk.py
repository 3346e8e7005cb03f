"""Cloud agents (``/agent/identities``), agent keys, environments and artifacts via the SDK."""

from __future__ import annotations

import httpx
import pytest
from oz_agent_sdk import (
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    OzAPI,
    PermissionDeniedError,
    UnprocessableEntityError,
)

from core import environments
from core.accounts import account_by_email
from core.keys import create_key
from core.settings import Settings
from core.store import Store
from tests.api.test_runs_sdk import principal_of
from tests.live_server import LiveServer
from tests.support.people import AGENT_LIMIT, Person, add_file_artifact


@pytest.fixture
def agent_limit(settings: Settings):
    """The plan's limit as the running gateway reads it (``OZGW_AGENT_LIMIT`` in its settings)."""

    def set_limit(n: int) -> None:
        settings.agent_limit = n

    set_limit(3)
    return set_limit


def agent_client(store: Store, person: Person, agent_uid: str, base_url: str) -> OzAPI:
    with store.session() as session:
        _record, raw = create_key(
            session, account_by_email(session, person.account.email), "ci", agent_uid=agent_uid, agent_limit=AGENT_LIMIT
        )
    return OzAPI(api_key=raw, base_url=base_url, max_retries=0)


def test_every_team_has_an_undeletable_default_agent(alice: Person, agent_limit):
    agents = alice.client.agent.agent.list().agents
    assert len(agents) == 1
    default = agents[0]
    assert default.available is True
    assert alice.client.agent.agent.get(default.uid).name == default.name
    with pytest.raises(UnprocessableEntityError) as err:
        alice.client.agent.agent.delete(default.uid)
    assert "default cloud agent cannot be deleted" in err.value.body["detail"]


def test_create_update_delete_an_agent(alice: Person, store: Store, gateway: LiveServer, agent_limit):
    created = alice.client.agent.agent.create(
        name="triage-bot",
        description="labels issues",
        secrets=[{"name": "SENTRY_TOKEN"}],
        skills=["acme/ops:triage"],
        base_model="m-small",
    )
    assert created.available is True
    assert created.secrets[0].name == "SENTRY_TOKEN"
    assert created.skills == ["acme/ops:triage"]

    updated = alice.client.agent.agent.update(created.uid, name="triage", description="")
    assert updated.name == "triage"
    assert updated.description is None  # an empty string clears
    assert updated.skills == ["acme/ops:triage"]  # omitted: unchanged
    assert alice.client.agent.agent.update(created.uid, skills=[]).skills == []

    bot = agent_client(store, alice, created.uid, gateway.api_url)
    assert bot.agent.runs.list().runs == []
    alice.client.agent.agent.delete(created.uid)
    assert [a.uid for a in alice.client.agent.agent.list().agents if a.uid == created.uid] == []
    with pytest.raises(NotFoundError):
        alice.client.agent.agent.get(created.uid)
    with pytest.raises(AuthenticationError):  # its keys died with it
        bot.agent.runs.list()


def test_agent_keys_cannot_manage_agents_and_run_as_their_agent(
    alice: Person, store: Store, gateway: LiveServer, agent_limit
):
    default = alice.client.agent.agent.list().agents[0]
    bot = agent_client(store, alice, default.uid, gateway.api_url)
    with pytest.raises(PermissionDeniedError) as err:
        bot.agent.agent.create(name="sneaky")
    assert err.value.body["type"].endswith("/not-authorized/")
    with pytest.raises(PermissionDeniedError):
        bot.agent.agent.update(default.uid, name="renamed")

    run = bot.agent.runs.retrieve(bot.agent.run(prompt="nightly dependency check").run_id)
    assert run.creator.type == "service_account" and run.creator.uid == default.uid
    assert run.executor.type == "service_account" and run.executor.display_name == default.name
    with pytest.raises(BadRequestError):
        bot.agent.run(prompt="x", team=False)
    # A person may pick the agent as the executor of their run.
    picked = alice.client.agent.runs.retrieve(
        alice.client.agent.run(prompt="as agent", agent_identity_uid=default.uid).run_id
    )
    assert picked.creator.email == "alice@example.com"
    assert picked.executor.uid == default.uid


def test_plan_limit_makes_extra_agents_unavailable(alice: Person, store: Store, gateway: LiveServer, agent_limit):
    first = alice.client.agent.agent.create(name="one")
    second = alice.client.agent.agent.create(name="two")
    with pytest.raises(PermissionDeniedError) as err:
        alice.client.agent.agent.create(name="three")
    assert err.value.body["type"].endswith("/feature-not-available/")
    bot = agent_client(store, alice, second.uid, gateway.api_url)

    agent_limit(2)  # the team was downgraded
    listed = {a.uid: a.available for a in alice.client.agent.agent.list().agents}
    assert listed[first.uid] is True and listed[second.uid] is False
    with pytest.raises(PermissionDeniedError) as err:
        bot.agent.run(prompt="x")
    assert "over the team's plan limit" in err.value.body["detail"]
    with pytest.raises(PermissionDeniedError):
        alice.client.agent.agent.update(second.uid, name="renamed")
    with pytest.raises(PermissionDeniedError):
        alice.client.agent.run(prompt="x", agent_identity_uid=second.uid)


def test_agent_config_is_validated(alice: Person, agent_limit):
    with pytest.raises(BadRequestError) as err:
        alice.client.agent.agent.create(name="dup", secrets=[{"name": "A"}, {"name": "A"}])
    assert "unique" in err.value.body["detail"]
    with pytest.raises(BadRequestError):
        alice.client.agent.agent.create(name="  ")
    with pytest.raises(NotFoundError):
        alice.client.agent.agent.create(name="x", environment_id="B" * 22)


def test_environments_list(alice: Person, make_person, store: Store):
    outsider = make_person("eve@example.com", team="other")
    with store.session() as session:
        env = environments.create_environment(
            session,
            principal_of(alice),
            name="api",
            docker_image="python:3.12",
            repos=["acme/api@main"],
            setup_commands=["pip install -e ."],
            description="The API service",
        )
    listed = alice.client.agent.list_environments().environments
    assert [e.uid for e in listed] == [env.uid]
    assert listed[0].config.docker_image == "python:3.12"
    assert listed[0].config.github_repos[0].repo == "api"
    assert listed[0].config.setup_commands == ["pip install -e ."]
    assert listed[0].creator.email == "alice@example.com"
    assert listed[0].setup_failed is False
    assert outsider.client.agent.list_environments().environments == []


def test_file_artifacts_download_through_a_signed_link(alice: Person, store: Store, make_person):
    run_id = alice.client.agent.run(prompt="make a report").run_id
    uid = add_file_artifact(store, run_id, "report.txt", b"hello", "text/plain")
    artifact = alice.client.agent.get_artifact(uid)
    assert artifact.artifact_type == "FILE"
    assert artifact.data.filename == "report.txt"
    download = httpx.get(artifact.data.download_url)
    assert download.status_code == 200 and download.content == b"hello"
    tampered = httpx.get(artifact.data.download_url.replace("signature=", "signature=0"))
    assert tampered.status_code == 403
    with pytest.raises(NotFoundError):
        make_person("eve@example.com", team="other").client.agent.get_artifact(uid)
