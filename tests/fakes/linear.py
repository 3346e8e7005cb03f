"""A small Linear GraphQL API on 127.0.0.1, for the real ``gql`` client.

Every document it receives is validated against Linear's pinned schema first (an invalid one
gets GraphQL errors, as Linear would answer), then answered by its root field from the recorded
responses in ``tests/linear/fixtures/graphql``.  It records each operation with its variables
and the caller's Authorization header: activities posted, sessions updated, comments, PR
attachments and state moves are what tests assert.  ``rate_limit(field, n)`` answers the next
``n`` calls of that field with ``RATELIMITED``; ``refuse(field)`` with a user error.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from aiohttp import web
from graphql import FieldNode, GraphQLSchema, OperationDefinitionNode, build_schema, parse, validate

from tests.live_server import FakeService, LiveServer

FIXTURES = Path(__file__).resolve().parent.parent / "linear" / "fixtures"
APP_USER = "48a91e15-a5e1-4c91-b105-30ee7bb22878"
ADA_ID = "2f9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f"


@cache
def schema() -> GraphQLSchema:
    return build_schema((FIXTURES / "linear-schema.graphql").read_text())


def graphql_fixture(name: str) -> dict:
    return json.loads((FIXTURES / "graphql" / f"{name}.json").read_text())


@dataclass
class Operation:
    field: str
    variables: dict[str, Any]
    authorization: str | None
    at: float = 0.0
    """Wall-clock time it arrived (benchmarks match it to when a webhook was sent)."""


class FakeLinear(FakeService):
    def __init__(self) -> None:
        self.operations: list[Operation] = []
        self.users: dict[str, dict] = {ADA_ID: graphql_fixture("user")["data"]["user"]}
        self.issue = graphql_fixture("issue")["data"]["issue"]
        self.started_states = [
            {"id": "state-review", "name": "In Review", "position": 3.0},
            {"id": "state-progress", "name": "In Progress", "position": 2.0},
        ]
        self._limits: dict[str, int] = {}
        self._refused: set[str] = set()
        self._lock = threading.Lock()
        # The OAuth side: the app's credentials, the tokens granted, and whether calls need one.
        self.client_id, self.client_secret = "lin_client_" + uuid.uuid4().hex[:8], uuid.uuid4().hex
        self.lifetimes: list[int] = []
        """``expires_in`` of the next grants, in order (then 30 days)."""
        self.granted: list[str] = []
        self.refuse_grants = False
        self.require_token = False
        # Workspace installs (authorization code, actor=app): who approves, which workspace each
        # token is for, refresh tokens that rotate (each works once), and grants an admin revoked.
        self.organizations: dict[str, dict] = {}
        self.approving: str | None = None
        """The workspace the next visit to ``/oauth/authorize`` installs in (its admin approves)."""
        self.authorize_requests: list[dict] = []
        self.token_workspace: dict[str, str] = {}
        self._codes: dict[str, tuple[str, str]] = {}
        self._refresh: dict[str, str] = {}
        self.refresh_grants = 0
        self.expires: dict[str, float] = {}
        self.server = LiveServer(self._app())

    @property
    def url(self) -> str:
        return f"{self.server.url}/graphql"

    def rate_limit(self, field: str, times: int = 1) -> None:
        self._limits[field] = times

    def refuse(self, field: str) -> None:
        self._refused.add(field)

    def accept(self, field: str) -> None:
        self._refused.discard(field)

    def calls(self, field: str) -> list[Operation]:
        with self._lock:
            return [o for o in self.operations if o.field == field]

    def activities(self, session_id: str | None = None) -> list[dict]:
        return [
            o.variables["input"]["content"]
            for o in self.calls("agentActivityCreate")
            if session_id is None or o.variables["input"]["agentSessionId"] == session_id
        ]

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/graphql", self._graphql)
        app.router.add_post("/oauth/token", self._token)
        app.router.add_get("/oauth/authorize", self._authorize)
        app.router.add_get("/_operations", self._recorded)
        return app

    async def _recorded(self, request: web.Request) -> web.Response:
        with self._lock:
            return web.json_response([o.__dict__ for o in self.operations])

    @property
    def token_url(self) -> str:
        return f"{self.server.url}/oauth/token"

    def add_organization(self, name: str) -> str:
        organization = str(uuid.uuid4())
        self.organizations[organization] = {
            "id": organization,
            "name": name,
            "urlKey": name.lower(),
            "app_user": str(uuid.uuid4()),
        }
        return organization

    def revoke(self, organization: str) -> None:
        """An admin removed the app from that workspace: its tokens stop working."""
        with self._lock:
            for token, where in list(self.token_workspace.items()):
                if where == organization and token in self.granted:
                    self.granted.remove(token)
            self._refresh = {r: o for r, o in self._refresh.items() if o != organization}

    def workspace_of(self, operation: Operation) -> str | None:
        return self.token_workspace.get((operation.authorization or "").removeprefix("Bearer "))

    async def _authorize(self, request: web.Request) -> web.Response:
        """Linear's consent screen, approved at once by the workspace admin in ``approving``."""
        query = dict(request.query)
        self.authorize_requests.append(query)
        if query.get("client_id") != self.client_id or self.approving is None:
            raise web.HTTPFound(f"{query['redirect_uri']}?error=access_denied&state={query.get('state', '')}")
        code = uuid.uuid4().hex
        self._codes[code] = (self.approving, query["redirect_uri"])
        raise web.HTTPFound(f"{query['redirect_uri']}?code={code}&state={query.get('state', '')}")

    def _grant(self, organization: str | None, scope: str, refreshable: bool) -> web.Response:
        token = "lin_oauth_" + uuid.uuid4().hex
        with self._lock:
            self.granted.append(token)
            lifetime = self.lifetimes.pop(0) if self.lifetimes else (86400 if refreshable else 30 * 86400)
            self.expires[token] = time.time() + lifetime
            answer = {"access_token": token, "token_type": "Bearer", "expires_in": lifetime, "scope": scope}
            if organization is not None:
                self.token_workspace[token] = organization
            if refreshable:
                answer["refresh_token"] = refresh = "lin_refresh_" + uuid.uuid4().hex
                self._refresh[refresh] = organization
        return web.json_response(answer)

    async def _token(self, request: web.Request) -> web.Response:
        """Linear's token endpoint: client credentials, authorization code, refresh (rotating)."""
        form = await request.post()
        if self.refuse_grants or (form.get("client_id"), form.get("client_secret")) != (
            self.client_id,
            self.client_secret,
        ):
            return web.json_response(
                {"error": "invalid_client", "error_description": "Client authentication failed"}, status=401
            )
        invalid = web.json_response({"error": "invalid_grant", "error_description": "Invalid grant"}, status=400)
        match form.get("grant_type"):
            case "client_credentials":
                return self._grant(None, str(form.get("scope", "")), refreshable=False)
            case "authorization_code":
                organization, redirect = self._codes.pop(str(form.get("code")), (None, None))
                if organization is None or redirect != form.get("redirect_uri"):
                    return invalid
                return self._grant(organization, "read,write,app:assignable,app:mentionable", refreshable=True)
            case "refresh_token":
                with self._lock:
                    organization = self._refresh.pop(str(form.get("refresh_token")), None)  # each works once
                    if organization is not None:
                        self.refresh_grants += 1
                if organization is None:
                    return invalid
                return self._grant(organization, "read,write,app:assignable,app:mentionable", refreshable=True)
        return web.json_response({"error": "unsupported_grant_type"}, status=400)

    async def _graphql(self, request: web.Request) -> web.Response:
        presented = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if self.require_token and (presented not in self.granted or self.expires.get(presented, 0) < time.time()):
            return web.json_response(
                {"errors": [{"message": "Authentication required", "extensions": {"code": "AUTHENTICATION_ERROR"}}]},
                status=401,
            )
        body = await request.json()
        document = parse(body["query"])
        errors = validate(schema(), document)
        if errors:
            return web.json_response({"errors": [{"message": e.message} for e in errors], "data": None}, status=400)
        operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
        variables = body.get("variables") or {}
        data: dict[str, Any] = {}
        for selection in operation.selection_set.selections:
            assert isinstance(selection, FieldNode)
            name = selection.name.value
            with self._lock:
                self.operations.append(Operation(name, variables, request.headers.get("Authorization"), time.time()))
                limited = self._limits.get(name, 0)
                if limited:
                    self._limits[name] = limited - 1
            if limited:
                return web.json_response(graphql_fixture("error.ratelimited"), status=400)
            if name in self._refused:
                return web.json_response(graphql_fixture("error.not_found"))
            data.update(self._answer(name, variables, self.token_workspace.get(presented)))
        return web.json_response({"data": data})

    def _answer(self, name: str, variables: dict, workspace: str | None) -> dict:
        organization = self.organizations.get(workspace or "")
        match name:
            case "viewer" if organization:
                return {"viewer": {"id": organization["app_user"], "name": "Oz"}}
            case "viewer":
                return {"viewer": graphql_fixture("viewer")["data"]["viewer"]}
            case "organization" if organization:
                return {"organization": {k: organization[k] for k in ("id", "name", "urlKey")}}
            case "user":
                return {"user": self.users.get(variables["id"])}
            case "issue":
                return {"issue": copy.deepcopy(self.issue)}
            case "agentActivityCreate":
                return graphql_fixture("agentActivityCreate")["data"]
            case "agentSessionUpdate":
                return graphql_fixture("agentSessionUpdate")["data"]
            case "workflowStates":
                return {"workflowStates": {"nodes": self.started_states}}
            case "issueUpdate":
                return {"issueUpdate": {"success": True}}
            case "attachmentLinkGitHubPR":
                return {"attachmentLinkGitHubPR": {"success": True}}
            case "attachmentLinkURL":
                return graphql_fixture("attachmentLinkURL")["data"]
            case "commentCreate":
                return graphql_fixture("commentCreate")["data"]
        raise AssertionError(f"the fake Linear does not answer {name}")
