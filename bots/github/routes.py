"""GitHub's routes: the App's webhook and the per-person authorization flow (outside the Oz
API: no bearer key, not in the OpenAPI document)."""

from __future__ import annotations

from bots.github import authorize, webhook
from bots.web import Route

GITHUB_ROUTES: tuple[Route, ...] = (
    Route("GET", "/auth/github", authorize.show, "GitHub authorization: sign in, or confirm a signed link"),
    Route("POST", "/auth/github", authorize.start, "Start GitHub authorization (signed link or personal key)"),
    Route("GET", "/auth/github/callback", authorize.callback, "GitHub OAuth callback"),
    Route("POST", "/github/webhook", webhook.receive, "GitHub App webhook"),
)
