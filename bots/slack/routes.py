"""Slack's routes, mounted when Slack is configured (``OZGW_SLACK_*``)."""

from __future__ import annotations

from bots.slack import app as slack
from bots.slack import linking as slack_linking
from bots.web import Route

SLACK_EVENTS_ROUTE = Route("POST", "/slack/events", slack.events, "Slack Events API (signed by Slack)")
"""Mounted only with a signing secret: without one nothing could tell Slack from a forger."""
SLACK_ROUTES: tuple[Route, ...] = (
    # Mounted when Slack is configured (OZGW_SLACK_*); outside the Oz API like the GitHub routes.
    Route("GET", "/slack/install", slack.install, "Install the Slack app in a workspace (OAuth)"),
    Route("GET", "/slack/oauth_redirect", slack.oauth_redirect, "Slack OAuth redirect"),
    Route("GET", "/link/slack", slack_linking.show, "Link a Slack user to an account (signed link)"),
    Route("POST", "/link/slack", slack_linking.submit, "Link a Slack user to an account"),
)
