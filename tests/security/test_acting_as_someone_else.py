"""Who may act as whom: a run is steered only by the one who started it (or a team admin),
since a follow-up executes with the creator's GitHub token and secrets; only admins change
what the whole team relies on (cloud agents and ``on_behalf_of``, team secrets, integrations);
agent keys write no secrets; a run from a private Slack conversation is its requester's."""

from __future__ import annotations

import httpx
import pytest
from oz_agent_sdk import PermissionDeniedError

from core import integrations
from core.errors import OzError
from core.keys import create_key
from core.models import IntegrationProvider, Principal
from core.store import Store
from core.store.tables import RunFollowupRow
from tests.live_server import LiveServer
from tests.support.people import AGENT_LIMIT, Person


@pytest.fixture
def team(make_person) -> tuple[Person, Person, Person]:
    """Alice, the team's first account and so its admin; Bob and Dave, members."""
    return make_person("alice@acme.dev"), make_person("bob@acme.dev"), make_person("dave@acme.dev")


def followups_of(store: Store, run_id: str) -> list[str]:
    with store.reader() as session:
        return [r.message for r in session.query(RunFollowupRow).filter_by(run_id=run_id)]


def test_only_the_runs_creator_or_an_admin_steers_it(team, store: Store):
    alice, bob, dave = team
    run_id = bob.client.agent.run(prompt="Fix the flaky test").run_id

    with pytest.raises(PermissionDeniedError) as refused:
        dave.client.agent.runs.submit_followup(run_id, message="also push my branch somewhere")
    assert "only the person who started run" in refused.value.body["detail"]
    with pytest.raises(PermissionDeniedError):
        dave.client.agent.runs.cancel(run_id)
    assert followups_of(store, run_id) == []

    bob.client.agent.runs.submit_followup(run_id, message="and the other one")
    alice.client.agent.runs.submit_followup(run_id, message="(admin) keep it small")
    assert followups_of(store, run_id) == ["and the other one", "(admin) keep it small"]
    assert dave.client.agent.runs.retrieve(run_id).state == "QUEUED"  # seeing is fine; steering is not
    assert alice.client.agent.runs.cancel(run_id) == run_id


def test_only_admins_change_cloud_agents_and_on_behalf_of(team):
    alice, bob, _dave = team
    default = alice.client.agent.agent.list().agents[0]
    with pytest.raises(PermissionDeniedError) as refused:
        bob.client.agent.agent.update(default.uid, on_behalf_of_enabled=True)
    assert "only a team admin" in refused.value.body["detail"]
    with pytest.raises(PermissionDeniedError):
        bob.client.agent.agent.create(name="mine")
    assert alice.client.agent.agent.update(default.uid, on_behalf_of_enabled=True).on_behalf_of_enabled is True


def test_team_secrets_are_admins_and_agent_keys_write_none(team, gateway: LiveServer, store: Store):
    alice, bob, _dave = team

    def post(key: str, scope: str) -> httpx.Response:
        body = {"name": "DEPLOY_TOKEN", "value": "v-123", "scope": scope}
        return httpx.post(f"{gateway.api_url}/secrets", json=body, headers={"Authorization": f"Bearer {key}"})

    assert post(bob.key, "team").status_code == 403
    assert post(bob.key, "personal").status_code == 201
    assert post(alice.key, "team").status_code == 201
    default = alice.client.agent.agent.list().agents[0]
    with store.session() as session:
        _record, agent_key = create_key(session, alice.account, "bot", agent_uid=default.uid, agent_limit=AGENT_LIMIT)
    refused = post(agent_key, "team")
    assert refused.status_code == 403 and "agent keys cannot change managed secrets" in refused.json()["detail"]


def test_only_admins_set_up_integrations(team, store: Store):
    alice, bob, _dave = team

    def principal(person: Person) -> Principal:
        return Principal(kind="user", uid=person.account.uid, team_uid=person.account.team_uid)

    with store.session() as session, pytest.raises(OzError) as refused:
        integrations.create_integration(session, principal(bob), IntegrationProvider.SLACK, environment_id=None)
    assert refused.value.code == "not_authorized"
    with store.session() as session:
        integrations.create_integration(session, principal(alice), IntegrationProvider.SLACK, environment_id=None)


def test_a_personal_run_is_seen_by_its_creator_and_admins_only(team, gateway: LiveServer):
    alice, bob, dave = team
    run_id = bob.client.agent.run(prompt="my private experiment", team=False).run_id
    assert bob.client.agent.runs.retrieve(run_id).scope.type == "User"
    assert alice.client.agent.runs.retrieve(run_id).run_id == run_id
    with pytest.raises(PermissionDeniedError):
        dave.client.agent.runs.retrieve(run_id)


def test_the_first_account_of_a_team_is_its_admin_and_admins_promote(store: Store, database_url: str, tmp_path):
    import os
    import subprocess
    import sys

    from core.accounts import account_by_email, create_account

    with store.session() as session:
        first = create_account(session, "first@beta.dev", "beta")
        second = create_account(session, "second@beta.dev", "beta")
    assert first.is_admin and not second.is_admin
    env = {k: v for k, v in os.environ.items() if not k.startswith("OZGW_")}
    env.update(OZGW_DATABASE_URL=database_url, OZGW_DATA_DIR=str(tmp_path))
    subprocess.run(
        [sys.executable, "-m", "cli", "account", "promote", "second@beta.dev"],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    with store.reader() as session:
        assert account_by_email(session, "second@beta.dev").is_admin


def test_mcp_credentials_never_leave_the_gateway(team):
    alice, _bob, _dave = team
    servers = {
        "tracker": {"url": "https://mcp.acme.dev/sse", "headers": {"Authorization": "Bearer mcp-secret-1"}},
        "local": {"command": "npx", "args": ["-y", "tool"], "env": {"TOOL_TOKEN": "mcp-secret-2"}},
    }
    run = alice.client.agent.runs.retrieve(alice.client.agent.run(prompt="x", config={"mcp_servers": servers}).run_id)
    shown = run.agent_config.mcp_servers
    assert shown["tracker"].headers == {"Authorization": "***"} and shown["local"].env == {"TOOL_TOKEN": "***"}
    assert "mcp-secret" not in run.model_dump_json()
    agent = alice.client.agent.agent.create(name="with-tools", mcp_servers=servers)
    assert "mcp-secret" not in agent.model_dump_json()
    assert "mcp-secret" not in alice.client.agent.agent.get(agent.uid).model_dump_json()
