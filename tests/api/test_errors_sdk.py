"""Each error reaches the SDK as its typed exception, with the catalog's problem+json body."""

from __future__ import annotations

import base64

import httpx
import pytest
from oz_agent_sdk import AuthenticationError, BadRequestError, NotFoundError, OzAPI
from sqlalchemy import update

from core.keys import revoke_key
from core.store import Store, utcnow
from core.store.tables import ApiKeyRow
from tests.live_server import LiveServer
from tests.support.people import Person

AUTH_TYPE = "/reference/api-and-sdk/troubleshooting/errors/authentication-required/"


def assert_problem(body: dict, code: str, status: int, retryable: bool) -> None:
    assert body["type"] == f"/reference/api-and-sdk/troubleshooting/errors/{code.replace('_', '-')}/"
    assert body["status"] == status
    assert body["retryable"] is retryable
    expected_error = f"{body['title']} ({body['detail']})" if body.get("detail") else body["title"]
    assert body["error"] == expected_error
    assert body["instance"].startswith("/api/v1/")


@pytest.mark.parametrize("key", [None, "not-a-key", "wk-" + "A" * 40])
def test_missing_or_unknown_key_is_authentication_required(gateway: LiveServer, key: str | None):
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    response = httpx.get(f"{gateway.api_url}/agent/runs", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert_problem(response.json(), "authentication_required", 401, False)
    if key:
        client = OzAPI(api_key=key, base_url=gateway.api_url, max_retries=0)
        with pytest.raises(AuthenticationError) as err:
            client.agent.runs.list()
        assert err.value.body["type"] == AUTH_TYPE


def test_expired_key_is_refused(alice: Person, store: Store):
    alice.client.agent.runs.list()  # works while valid
    with store.session() as session:
        session.execute(update(ApiKeyRow).where(ApiKeyRow.account_uid == alice.account.uid).values(expires_at=utcnow()))
    with pytest.raises(AuthenticationError) as err:
        alice.client.agent.runs.list()
    assert err.value.body["title"].startswith("Your API key is invalid or has expired")


def test_revoked_key_is_refused(alice: Person, store: Store):
    with store.session() as session:
        key_uid = session.query(ApiKeyRow.uid).filter(ApiKeyRow.account_uid == alice.account.uid).scalar()
        revoke_key(session, key_uid)
    with pytest.raises(AuthenticationError):
        alice.client.agent.run(prompt="x")


def test_no_prompt_and_no_skill_is_invalid(alice: Person):
    with pytest.raises(BadRequestError) as err:
        alice.client.agent.run(config={"name": "x"})
    assert_problem(err.value.body, "invalid_request", 400, False)
    assert "prompt is required unless a skill is given" in err.value.body["detail"]
    assert list(alice.client.agent.runs.list()) == []


def test_a_skill_alone_is_enough_and_names_the_run(alice: Person):
    run = alice.client.agent.runs.retrieve(
        alice.client.agent.run(skill="acme/backend:.warp/skills/deploy/SKILL.md").run_id
    )
    assert run.agent_config.name == "deploy"
    assert run.agent_config.skill_spec == "acme/backend:.warp/skills/deploy/SKILL.md"
    assert run.agent_skill.name == "deploy"


@pytest.mark.parametrize(
    ("metadata", "fragment"),
    [
        ({f"k{i}": "v" for i in range(21)}, "at most 20"),
        ({"bad key": "v"}, "'bad key'"),
        ({"k" * 65: "v"}, "1-64 bytes"),
        ({"k": "x" * 257}, "longer than 256 bytes"),
        ({"k": "a\x00b"}, "NUL"),
    ],
)
def test_metadata_rules(alice: Person, metadata: dict, fragment: str):
    with pytest.raises(BadRequestError) as err:
        alice.client.agent.run(prompt="x", metadata=metadata)
    assert fragment in err.value.body["detail"]


def test_attachments_are_limited_and_typed(alice: Person):
    png = base64.b64encode(b"\x89PNG\r\n").decode()
    one = {"data": png, "file_name": "a.png", "mime_type": "image/png"}
    assert alice.client.agent.run(prompt="see image", attachments=[one]).state == "QUEUED"
    with pytest.raises(BadRequestError) as err:
        alice.client.agent.run(prompt="x", attachments=[one] * 6)
    assert "at most 5" in err.value.body["detail"]
    with pytest.raises(BadRequestError) as err:
        alice.client.agent.run(prompt="x", attachments=[{**one, "mime_type": "application/pdf"}])
    assert "unsupported attachment type" in err.value.body["detail"]
    with pytest.raises(BadRequestError) as err:
        alice.client.agent.run(prompt="x", attachments=[{**one, "data": "%%%not base64"}])
    assert "not valid base64" in err.value.body["detail"]


def test_unknown_environment_is_resource_not_found(alice: Person):
    with pytest.raises(NotFoundError) as err:
        alice.client.agent.run(prompt="x", config={"environment_id": "A" * 22})
    assert_problem(err.value.body, "resource_not_found", 404, False)
    assert err.value.body["detail"] == f"environment {'A' * 22} not found"


def test_unknown_conversation_and_parent_are_refused(alice: Person):
    with pytest.raises(NotFoundError):
        alice.client.agent.run(prompt="x", conversation_id="00000000-0000-0000-0000-000000000000")
    with pytest.raises(BadRequestError) as err:
        alice.client.agent.run(prompt="x", parent_run_id="00000000-0000-0000-0000-000000000000")
    assert "parent_run_id" in err.value.body["detail"]


def test_child_runs_inherit_metadata_and_continue_conversations(alice: Person):
    parent = alice.client.agent.run(prompt="parent", metadata={"ticket_id": "A-1", "k": "p"})
    parent_item = alice.client.agent.runs.retrieve(parent.run_id)
    child = alice.client.agent.run(
        prompt="child", parent_run_id=parent.run_id, metadata={"k": "c"}, conversation_id=parent_item.conversation_id
    )
    child_item = alice.client.agent.runs.retrieve(child.run_id)
    assert child_item.metadata == {"ticket_id": "A-1", "k": "c"}
    assert child_item.parent_run_id == parent.run_id
    assert child_item.conversation_id == parent_item.conversation_id
    grandchild = alice.client.agent.run(prompt="grandchild", parent_run_id=child.run_id).run_id
    alice.client.agent.run(prompt="unrelated")
    below_parent = {r.run_id for r in alice.client.agent.runs.list(ancestor_run_id=parent.run_id)}
    assert below_parent == {child.run_id, grandchild}
    assert [r.run_id for r in alice.client.agent.runs.list(ancestor_run_id=child.run_id)] == [grandchild]


def test_malformed_bodies_and_queries(alice: Person, gateway: LiveServer):
    auth = {"Authorization": f"Bearer {alice.key}"}
    response = httpx.post(f"{gateway.api_url}/agent/runs", content=b"{not json", headers=auth)
    assert response.status_code == 400
    assert response.json()["detail"] == "the request body is not valid JSON"
    response = httpx.post(f"{gateway.api_url}/agent/runs", json=["a list"], headers=auth)
    assert response.json()["detail"] == "the request body must be a JSON object"
    response = httpx.post(f"{gateway.api_url}/agent/runs", json={"prompt": 5}, headers=auth)
    assert response.status_code == 400 and response.json()["detail"].startswith("prompt:")
    response = httpx.get(f"{gateway.api_url}/agent/runs?state=RUNNING", headers=auth)
    assert response.status_code == 400 and "state" in response.json()["detail"]
    response = httpx.get(f"{gateway.api_url}/agent/runs?limit=0", headers=auth)
    assert response.status_code == 400 and "limit" in response.json()["detail"]
    response = httpx.get(f"{gateway.api_url}/agent/nothing-here", headers=auth)
    assert response.status_code == 404
    assert_problem(response.json(), "resource_not_found", 404, False)
    response = httpx.delete(f"{gateway.api_url}/agent/runs", headers=auth)
    assert response.status_code == 422 and "DELETE is not allowed" in response.json()["detail"]


def test_the_legacy_create_path_works_like_the_sdk_path(alice: Person, gateway: LiveServer):
    response = httpx.post(
        f"{gateway.api_url}/agent/run", json={"prompt": "curl it"}, headers={"Authorization": f"Bearer {alice.key}"}
    )
    assert response.status_code == 200
    assert alice.client.agent.runs.retrieve(response.json()["run_id"]).prompt == "curl it"


def test_openapi_document_is_public_and_lists_the_routes(gateway: LiveServer):
    doc = httpx.get(f"{gateway.api_url}/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    assert {"post", "get"} <= set(doc["paths"]["/agent/runs"])
    assert "post" in doc["paths"]["/agent/runs/{run_id}/cancel"]
    assert "RunItem" in doc["components"]["schemas"]
    assert "RunAgentRequest" in doc["components"]["schemas"]


def test_an_unexpected_failure_is_internal_error_with_a_trace_id(alice: Person, monkeypatch: pytest.MonkeyPatch):
    """A bug in a handler must not leak a traceback: the SDK sees internal_error, retryable, traced."""
    from oz_agent_sdk import InternalServerError

    from core import run_items

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("database exploded: password=hunter2")

    monkeypatch.setattr(run_items, "list_runs", broken)
    with pytest.raises(InternalServerError) as err:
        alice.client.agent.runs.list()
    body = err.value.body
    assert_problem(body, "internal_error", 500, True)
    assert len(body["trace_id"]) == 32
    assert err.value.response.headers["x-should-retry"] == "true"
    assert "hunter2" not in str(body) and "exploded" not in str(body)


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"computer_use_enabled": True}, "computer_use_enabled"),
        ({"worker_host": "gpu-box-1"}, "worker_host"),
        ({"runner_id": "runner-7"}, "runner_id"),
        ({"mcp_servers": {"github": {"warp_id": "1deb1b14-b6e5-4996-ae99-233b7555d2d0"}}}, "Warp-shared"),
        ({"mcp_servers": {"my server": {"url": "https://mcp.example.test"}}}, "MCP server name"),
        ({"skill_spec": "deploy"}, "must look like owner/repo:skill-name"),
    ],
)
def test_what_the_gateway_would_not_honour_is_refused_by_name(alice: Person, config: dict, field: str):
    """Accepted and ignored would tell the caller it was honoured: each is a 400 naming it, and no run."""
    with pytest.raises(BadRequestError) as err:
        alice.client.agent.run(prompt="Fix it", config=config)
    assert_problem(err.value.body, "invalid_request", 400, False)
    assert field in err.value.body["detail"]
    assert list(alice.client.agent.runs.list()) == []
