"""Every route the gateway serves, in one table; the OpenAPI document is built from it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from pydantic import BaseModel

from bots.api import environments, events, identities, runs
from core.models.wire import (
    AgentCreateRequest,
    AgentResponse,
    AgentUpdateRequest,
    FileArtifactResponse,
    FollowupRequest,
    ListAgentIdentitiesResponse,
    ListEnvironmentsResponse,
    ListRunsResponse,
    RunAgentRequest,
    RunAgentResponse,
    RunItem,
    RunListQuery,
)

API = "/api/v1"


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    summary: str
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response_status: int = 200
    text_response: bool = False


ROUTES: tuple[Route, ...] = (
    Route("POST", f"{API}/agent/runs", runs.create_run, "Create a run", RunAgentRequest, RunAgentResponse),
    Route("POST", f"{API}/agent/run", runs.create_run, "Create a run (legacy path)", RunAgentRequest, RunAgentResponse),
    Route("GET", f"{API}/agent/runs", runs.list_runs, "List runs", response=ListRunsResponse, query=RunListQuery),
    Route("GET", f"{API}/agent/runs/{{run_id}}", runs.get_run, "Retrieve a run", response=RunItem),
    Route(
        "GET",
        f"{API}/agent/runs/{{run_id}}/events",
        events.run_events,
        "A run's transcript (JSON, or server-sent events with Accept: text/event-stream)",
    ),
    Route("POST", f"{API}/agent/runs/{{run_id}}/cancel", runs.cancel_run, "Cancel a run", text_response=True),
    Route("POST", f"{API}/agent/runs/{{run_id}}/followups", runs.submit_followup, "Send a follow-up", FollowupRequest),
    Route(
        "GET",
        f"{API}/agent/identities",
        identities.list_identities,
        "List cloud agents",
        response=ListAgentIdentitiesResponse,
    ),
    Route(
        "POST",
        f"{API}/agent/identities",
        identities.create_identity,
        "Create a cloud agent",
        AgentCreateRequest,
        AgentResponse,
    ),
    Route(
        "GET",
        f"{API}/agent/identities/{{uid}}",
        identities.get_identity,
        "Retrieve a cloud agent",
        response=AgentResponse,
    ),
    Route(
        "PUT",
        f"{API}/agent/identities/{{uid}}",
        identities.update_identity,
        "Update a cloud agent",
        AgentUpdateRequest,
        AgentResponse,
    ),
    Route(
        "DELETE",
        f"{API}/agent/identities/{{uid}}",
        identities.delete_identity,
        "Delete a cloud agent",
        response_status=204,
    ),
    Route(
        "GET",
        f"{API}/agent/environments",
        environments.list_environments,
        "List environments",
        response=ListEnvironmentsResponse,
    ),
    Route(
        "GET",
        f"{API}/agent/artifacts/{{uid}}",
        environments.get_artifact,
        "Retrieve an artifact",
        response=FileArtifactResponse,
    ),
    Route(
        "GET",
        f"{API}/agent/artifacts/{{uid}}/download",
        environments.download_artifact,
        "Download an artifact (signed link)",
    ),
)
