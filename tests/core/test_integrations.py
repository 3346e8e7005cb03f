"""Integrations' run defaults, and each refusal a Slack or Linear request would explain."""

from __future__ import annotations

import pytest

from core import environments
from core.accounts import create_account
from core.errors import ErrorCode, OzError
from core.integrations import create_integration, run_defaults, update_integration
from core.models import IntegrationProvider, Principal
from core.store import Store, utcnow
from core.store.tables import EnvironmentRow

SLACK, LINEAR = IntegrationProvider.SLACK, IntegrationProvider.LINEAR


@pytest.fixture
def admin(store: Store) -> Principal:
    with store.session() as session:
        account = create_account(session, "admin@example.com", "acme")
    return Principal(kind="user", uid=account.uid, team_uid=account.team_uid, email=account.email)


def make_env(store: Store, who: Principal) -> str:
    with store.session() as session:
        return environments.create_environment(session, who, name="web", docker_image="debian:12").uid


def refusal(store: Store, who: Principal, provider: IntegrationProvider) -> OzError:
    with store.reader() as session, pytest.raises(OzError) as err:
        run_defaults(session, who.team_uid, provider, setup_url="http://gw/console")
    return err.value


def test_defaults_and_each_refusal(store: Store, admin: Principal):
    missing = refusal(store, admin, SLACK)
    assert missing.code == ErrorCode.INTEGRATION_NOT_CONFIGURED and missing.status == 400
    assert missing.title == "Slack integration is not configured"
    assert missing.extras["integration_name"] == "slack" and missing.extras["setup_url"].endswith("/console")

    env_id = make_env(store, admin)
    mcp = {"linear": {"url": "https://mcp.linear.app/sse"}}
    with store.session() as session:
        create_integration(
            session, admin, SLACK, environment_id=env_id, prompt="Be brief.", model_id="m1", mcp_servers=mcp
        )
    with store.reader() as session:
        defaults = run_defaults(session, admin.team_uid, SLACK, setup_url="http://gw/console")
    assert (defaults.environment_id, defaults.instructions, defaults.model_id) == (env_id, "Be brief.", "m1")
    assert defaults.mcp_servers == mcp
    assert refusal(store, admin, LINEAR).code == ErrorCode.INTEGRATION_NOT_CONFIGURED  # per provider

    with store.session() as session:
        update_integration(session, admin, SLACK, enabled=False)
    disabled = refusal(store, admin, SLACK)
    assert disabled.code == ErrorCode.INTEGRATION_DISABLED and disabled.status == 403

    with store.session() as session:
        update_integration(session, admin, SLACK, enabled=True, remove_environment=True)
    no_env = refusal(store, admin, SLACK)
    assert no_env.code == ErrorCode.INTEGRATION_NOT_CONFIGURED and "has no environment" in no_env.detail

    with store.session() as session:
        update_integration(session, admin, SLACK, environment_id=env_id)
    with store.session() as session, pytest.raises(OzError) as err:  # in use: refused, naming who uses it
        environments.delete_environment(session, admin, env_id)
    assert err.value.code == ErrorCode.CONFLICT and "slack integration" in err.value.detail
    with store.session() as session:  # one deleted before deletions detached their integrations
        session.get(EnvironmentRow, env_id).deleted_at = utcnow()
    deleted = refusal(store, admin, SLACK)
    assert deleted.code == ErrorCode.RESOURCE_NOT_FOUND and env_id in deleted.detail

    fresh = make_env(store, admin)
    with store.session() as session:
        update_integration(session, admin, SLACK, environment_id=fresh)
        environments.delete_environment(session, admin, fresh, force=True)  # detaches it
    detached = refusal(store, admin, SLACK)
    assert detached.code == ErrorCode.INTEGRATION_NOT_CONFIGURED and "has no environment" in detached.detail


def test_bad_input_is_refused(store: Store, admin: Principal):
    with store.session() as session, pytest.raises(OzError) as err:
        create_integration(session, admin, LINEAR, environment_id="Z" * 22)
    assert err.value.code == ErrorCode.RESOURCE_NOT_FOUND
    env_id = make_env(store, admin)
    with store.session() as session, pytest.raises(OzError) as err:
        create_integration(session, admin, LINEAR, environment_id=env_id, mcp_servers={"x": {}})
    assert "exactly one of warp_id, command or url" in err.value.detail
    with store.session() as session:
        create_integration(session, admin, LINEAR, environment_id=env_id)
    with store.session() as session, pytest.raises(OzError) as err:
        create_integration(session, admin, LINEAR, environment_id=env_id)
    assert err.value.code == ErrorCode.CONFLICT
