"""Linear's routes, mounted when Linear is configured (``OZGW_LINEAR_*``)."""

from __future__ import annotations

from bots.linear import install as linear_install
from bots.linear import webhook as linear_webhook
from bots.web import Route

LINEAR_ROUTES: tuple[Route, ...] = (
    # Mounted when Linear is configured (OZGW_LINEAR_*).
    Route("POST", "/linear/webhook", linear_webhook.receive, "Linear webhook (signed by Linear)"),
    Route("GET", "/linear/install", linear_install.show, "Install the Linear app in a workspace (admin sign-in)"),
    Route("POST", "/linear/install", linear_install.start, "Start the Linear OAuth install (actor=app)"),
    Route("GET", "/linear/oauth/callback", linear_install.callback, "Linear OAuth callback"),
)
