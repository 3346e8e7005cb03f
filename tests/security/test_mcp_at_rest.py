"""MCP credentials (server ``headers`` and ``env``) are sealed wherever they are stored — an
integration, a cloud agent, a run's config — so the database holds none of them in the
clear; the runner can open them, and ``secret rotate-keys`` re-seals them (and seals any
stored before this was so)."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, text

from core import integrations, runs
from core.mcp import SEALED, unseal
from core.models import IntegrationProvider, Principal
from core.models.wire import AmbientAgentConfig, RunAgentRequest
from core.settings import Settings
from core.store import Store
from core.store.tables import AgentRow, IntegrationRow, RunRow
from core.vault import Vault
from tests.support.people import AGENT_LIMIT, Person

SERVERS = {
    "tracker": {"url": "https://mcp.acme.dev/sse", "headers": {"Authorization": "Bearer mcp-secret-1"}},
    "local": {"command": "npx", "args": ["-y", "tool"], "env": {"TOOL_TOKEN": "mcp-secret-2"}},
}


def stored(store: Store, table: str) -> str:
    """Every row of ``table`` as the database holds it."""
    with store.reader() as session:
        return json.dumps([list(map(str, row)) for row in session.execute(text(f"SELECT * FROM {table}"))])


def principal(person: Person) -> Principal:
    a = person.account
    return Principal(kind="user", uid=a.uid, team_uid=a.team_uid, email=a.email)


@pytest.fixture
def alice(make_person) -> Person:
    return make_person("alice@acme.dev")


def test_a_runs_and_a_cloud_agents_credentials_are_stored_sealed(alice: Person, store: Store, settings: Settings):
    run_id = alice.client.agent.run(prompt="x", config={"mcp_servers": SERVERS}).run_id
    agent = alice.client.agent.agent.create(name="with-tools", mcp_servers=SERVERS)

    assert "mcp-secret" not in stored(store, "runs") and "mcp-secret" not in stored(store, "agent_identities")
    vault = Vault.from_settings(settings)
    with store.reader() as session:
        config = session.get(RunRow, run_id).config
        settings_of_agent = session.get(AgentRow, agent.uid).settings
    assert config["mcp_servers"]["tracker"]["headers"]["Authorization"].startswith(SEALED)
    assert unseal(config["mcp_servers"], vault) == SERVERS  # the runner can open them
    assert unseal(settings_of_agent["mcp_servers"], vault) == SERVERS
    shown = alice.client.agent.runs.retrieve(run_id).agent_config.mcp_servers
    assert shown["tracker"].headers == {"Authorization": "***"}


def test_an_integrations_credentials_are_sealed_and_reach_its_runs_sealed(
    alice: Person, store: Store, settings: Settings
):
    vault = Vault.from_settings(settings)
    who = principal(alice)
    with store.session() as session:
        shown = integrations.create_integration(
            session, who, IntegrationProvider.SLACK, environment_id=None, mcp_servers=SERVERS, vault=vault
        )
    assert shown.mcp_servers["local"]["env"] == {"TOOL_TOKEN": "***"}
    assert "mcp-secret" not in stored(store, "integrations")
    with store.reader() as session:
        servers = session.scalar(select(IntegrationRow.mcp_servers))
    # what the Slack and Linear front doors do with an integration's defaults (no vault needed)
    created = runs.create(
        store,
        None,
        who,
        RunAgentRequest(prompt="from Slack", config=AmbientAgentConfig(mcp_servers=servers)),
        agent_limit=AGENT_LIMIT,
    )
    assert "mcp-secret" not in stored(store, "runs")
    with store.reader() as session:
        assert unseal(session.get(RunRow, created.run.run_id).config["mcp_servers"], vault) == SERVERS

    with store.session() as session, pytest.raises(ValueError, match="stored encrypted"):
        integrations.update_integration(session, who, IntegrationProvider.SLACK, mcp_servers=SERVERS)


def test_rotating_keys_reseals_credentials_and_seals_old_plain_ones(alice: Person, store: Store, settings: Settings):
    old = Vault.from_settings(settings)
    who = principal(alice)
    with store.session() as session:
        integrations.create_integration(
            session, who, IntegrationProvider.SLACK, environment_id=None, mcp_servers=SERVERS, vault=old
        )
        row = session.scalar(select(IntegrationRow))
        legacy = dict(SERVERS["tracker"], headers={"Authorization": "Bearer mcp-secret-3"})
        row.mcp_servers = {**row.mcp_servers, "legacy": legacy}  # stored before credentials were sealed

    new_key = Fernet.generate_key()
    rotating = Vault([new_key, (settings.data_dir / "encryption_key").read_bytes()])  # newest first
    with store.session() as session:
        assert integrations.rotate_all(session, rotating) == 3

    assert "mcp-secret" not in stored(store, "integrations")
    with store.reader() as session:
        servers = session.scalar(select(IntegrationRow.mcp_servers))
    assert unseal(servers, Vault([new_key]))["legacy"]["headers"] == {"Authorization": "Bearer mcp-secret-3"}
    assert unseal(servers, Vault([new_key]))["tracker"] == SERVERS["tracker"]
