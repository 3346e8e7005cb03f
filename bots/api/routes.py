"""Every route the gateway serves, in one table; the OpenAPI document is built from it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from pydantic import BaseModel

from bots.api import environments, events, identities, runs, secrets
from bots.api import keys as api_keys
from bots.console import views as console
from bots.github import authorize, webhook
from bots.linear import install as linear_install
from bots.linear import webhook as linear_webhook
from bots.slack import app as slack
from bots.slack import linking as slack_linking
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
    Route("GET", f"{API}/keys", api_keys.list_keys, "List your API keys (an admin: the team's), by prefix only"),
    Route("DELETE", f"{API}/keys/{{uid}}", api_keys.revoke_key, "Revoke an API key (its holder or a team admin)"),
    # Outside the Oz API (no bearer key; not in the OpenAPI document):
    Route("GET", "/auth/github", authorize.show, "GitHub authorization: sign in, or confirm a signed link"),
    Route("POST", "/auth/github", authorize.start, "Start GitHub authorization (signed link or personal key)"),
    Route("GET", "/auth/github/callback", authorize.callback, "GitHub OAuth callback"),
    Route("POST", "/github/webhook", webhook.receive, "GitHub App webhook"),
)

SLACK_EVENTS_ROUTE = Route("POST", "/slack/events", slack.events, "Slack Events API (signed by Slack)")
"""Mounted only with a signing secret: without one nothing could tell Slack from a forger."""
SLACK_ROUTES: tuple[Route, ...] = (
    # Mounted when Slack is configured (OZGW_SLACK_*); outside the Oz API like the GitHub routes.
    Route("GET", "/slack/install", slack.install, "Install the Slack app in a workspace (OAuth)"),
    Route("GET", "/slack/oauth_redirect", slack.oauth_redirect, "Slack OAuth redirect"),
    Route("GET", "/link/slack", slack_linking.show, "Link a Slack user to an account (signed link)"),
    Route("POST", "/link/slack", slack_linking.submit, "Link a Slack user to an account"),
)

CONSOLE_ROUTES: tuple[Route, ...] = (
    # The management pages (a browser, signed in with a personal key; outside the Oz API).
    Route("GET", "/console", console.index, "The console: to the runs"),
    Route("GET", "/console/sign-in", console.sign_in_page, "Console sign-in form"),
    Route("POST", "/console/sign-in", console.sign_in, "Sign in with a personal API key"),
    Route("POST", "/console/sign-out", console.sign_out, "Sign out"),
    Route("GET", "/console/runs", console.run_list, "Runs (Personal / All, filters, pages)"),
    Route("GET", "/console/runs/{run_id}", console.run_page, "A run's page"),
    Route("POST", "/console/runs/{run_id}/cancel", console.cancel, "Cancel a run from its page"),
    Route("POST", "/console/runs/{run_id}/followup", console.followup, "A follow-up from the run's page"),
    Route("GET", "/console/runs/{run_id}/events", console.run_events, "The run's transcript, live (SSE)"),
    Route("GET", "/console/keys", console.key_list, "Your API keys"),
    Route("POST", "/console/keys", console.key_create, "Create a key (shown once)"),
    Route("POST", "/console/keys/{uid}/revoke", console.key_revoke, "Revoke a key"),
)

LINEAR_ROUTES: tuple[Route, ...] = (
    # Mounted when Linear is configured (OZGW_LINEAR_*).
    Route("POST", "/linear/webhook", linear_webhook.receive, "Linear webhook (signed by Linear)"),
    Route("GET", "/linear/install", linear_install.show, "Install the Linear app in a workspace (admin sign-in)"),
    Route("POST", "/linear/install", linear_install.start, "Start the Linear OAuth install (actor=app)"),
    Route("GET", "/linear/oauth/callback", linear_install.callback, "Linear OAuth callback"),
)
