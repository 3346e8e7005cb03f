"""Credentials test constants: the fake GitHub App's OAuth client and webhook secret."""

from __future__ import annotations

OAUTH_CLIENT = ("Iv1.testclient", "oauth-client-secret-for-tests")


WEBHOOK_SECRET = "webhook-secret-for-tests"
