"""The console's routes: the management pages, for a browser signed in with a personal key."""

from __future__ import annotations

from bots.console import admin
from bots.console import views as console
from bots.web import Route

CONSOLE_ROUTES: tuple[Route, ...] = (
    # The management pages (a browser, signed in with a personal key; outside the Oz API).
    Route("GET", "/console", console.index, "The console: to the runs"),
    Route("GET", "/console/sign-in", console.sign_in_page, "Console sign-in form"),
    Route("POST", "/console/sign-in", console.sign_in, "Sign in with a personal API key"),
    Route("GET", "/console/sign-in/github", console.sign_in_github, "Sign in with GitHub (OAuth configured)"),
    Route("GET", "/console/sign-in/github/callback", console.sign_in_github_callback, "GitHub sign-in callback"),
    Route("POST", "/console/sign-out", console.sign_out, "Sign out"),
    Route("GET", "/console/runs", console.run_list, "Runs (Personal / All, filters, pages)"),
    Route("GET", "/console/runs/{run_id}", console.run_page, "A run's page"),
    Route("POST", "/console/runs/{run_id}/cancel", console.cancel, "Cancel a run from its page"),
    Route("POST", "/console/runs/{run_id}/followup", console.followup, "A follow-up from the run's page"),
    Route("GET", "/console/runs/{run_id}/events", console.run_events, "The run's transcript, live (SSE)"),
    Route("GET", "/console/keys", console.key_list, "Your API keys"),
    Route("POST", "/console/keys", console.key_create, "Create a key (shown once)"),
    Route("POST", "/console/keys/{uid}/revoke", console.key_revoke, "Revoke a key"),
    Route("GET", "/console/usage", admin.usage_page, "Usage: runs per day by source and status, by creator"),
    Route("GET", "/console/environments", admin.environment_list, "Environments"),
    Route("POST", "/console/environments", admin.environment_create, "Create an environment"),
    Route("POST", "/console/environments/{uid}", admin.environment_update, "Edit an environment"),
    Route("POST", "/console/environments/{uid}/delete", admin.environment_delete, "Delete an environment"),
    Route("GET", "/console/secrets", admin.secret_list, "Managed secrets (names only)"),
    Route("POST", "/console/secrets", admin.secret_put, "Set a managed secret (write-only)"),
    Route("POST", "/console/secrets/{name}/delete", admin.secret_delete, "Delete a managed secret"),
    Route("GET", "/console/team", admin.team_page, "Integrations, cloud agents, GitHub, linked identities"),
)
