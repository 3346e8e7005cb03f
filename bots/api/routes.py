"""The Oz REST API's routes, in one table; the OpenAPI document is built from it."""

from __future__ import annotations

from bots.api import artifacts, environments, events, identities, runs, schedules, secrets, usage
from bots.api import keys as api_keys
from bots.web import Route
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
from core.schedules import ListSchedulesResponse, ScheduleCreate, ScheduleItem, ScheduleUpdate
from core.usage import UsageReport

API = "/api/v1"

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
        artifacts.get_artifact,
        "Retrieve an artifact",
        response=FileArtifactResponse,
    ),
    Route(
        "GET",
        f"{API}/agent/artifacts/{{uid}}/download",
        artifacts.download_artifact,
        "Download an artifact (signed link)",
    ),
    Route("GET", f"{API}/secrets", secrets.list_secrets, "List managed secrets (names only)"),
    Route(
        "POST",
        f"{API}/secrets",
        secrets.put_secret,
        "Create or replace a managed secret",
        secrets.SecretCreate,
        response_status=201,
    ),
    Route("DELETE", f"{API}/secrets/{{name}}", secrets.delete_secret, "Delete a managed secret", response_status=204),
    Route(
        "GET",
        f"{API}/agent/schedules",
        schedules.list_schedules,
        "List scheduled agents (extension)",
        response=ListSchedulesResponse,
    ),
    Route(
        "POST",
        f"{API}/agent/schedules",
        schedules.create_schedule,
        "Create a scheduled agent (extension)",
        ScheduleCreate,
        ScheduleItem,
        response_status=201,
    ),
    Route(
        "GET",
        f"{API}/agent/schedules/{{uid}}",
        schedules.get_schedule,
        "Retrieve a scheduled agent (extension)",
        response=ScheduleItem,
    ),
    Route(
        "PATCH",
        f"{API}/agent/schedules/{{uid}}",
        schedules.update_schedule,
        "Update a scheduled agent (extension)",
        ScheduleUpdate,
        ScheduleItem,
    ),
    Route(
        "POST",
        f"{API}/agent/schedules/{{uid}}/pause",
        schedules.pause_schedule,
        "Pause a scheduled agent (extension)",
        response=ScheduleItem,
    ),
    Route(
        "POST",
        f"{API}/agent/schedules/{{uid}}/resume",
        schedules.resume_schedule,
        "Resume a scheduled agent from its next fire time (extension)",
        response=ScheduleItem,
    ),
    Route(
        "DELETE",
        f"{API}/agent/schedules/{{uid}}",
        schedules.delete_schedule,
        "Delete a scheduled agent (extension)",
        response_status=204,
    ),
    Route(
        "GET",
        f"{API}/usage",
        usage.get_usage,
        "Usage and cost of the team's runs (extension)",
        response=UsageReport,
        query=usage.UsageQuery,
    ),
    Route("GET", f"{API}/keys", api_keys.list_keys, "List your API keys (an admin: the team's), by prefix only"),
    Route("DELETE", f"{API}/keys/{{uid}}", api_keys.revoke_key, "Revoke an API key (its holder or a team admin)"),
)
