"""GitHub's OAuth web flow for people, through PyGithub's ``ApplicationOAuth``: the login
URL, exchanging the code, refreshing expiring user tokens, and who the token belongs to.

PyGithub derives the OAuth host from the API base URL (``api.github.com`` → ``github.com``,
``ghe.example/api/v3`` → ``ghe.example``), so GitHub Enterprise works unchanged.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from github import Auth, Github, GithubException
from github.ApplicationOAuth import ApplicationOAuth

from core.errors import ErrorCode, OzError
from core.settings import Settings
from core.signing import read_token, sign_token

STATE_PURPOSE = "github-oauth-state"
LINK_PURPOSE = "github-authorize"
STATE_TTL = timedelta(minutes=10)
LINK_TTL = timedelta(minutes=30)
"""A signed link is short-lived and single-use (its ``j`` is claimed when used), and handed
only to its person privately (the CLI, a private Slack message), never in a run's error."""


@dataclass(frozen=True)
class Grant:
    token: str
    refresh_token: str | None
    expires_at: datetime | None


def _app(settings: Settings) -> ApplicationOAuth:
    if not settings.github_oauth_client_id or settings.github_oauth_client_secret is None:
        raise OzError(
            ErrorCode.INTEGRATION_NOT_CONFIGURED,
            "set OZGW_GITHUB_OAUTH_CLIENT_ID and _SECRET",
            title="GitHub sign-in is not configured on this gateway",
            integration_name="github",
            setup_url=f"{settings.effective_public_url}/auth/github",
        )
    return github_client(settings).get_oauth_application(
        settings.github_oauth_client_id, settings.github_oauth_client_secret.get_secret_value()
    )


def authorize_page(settings: Settings) -> str:
    """Where anyone may be sent to connect GitHub: they sign in there as themselves first."""
    return f"{settings.effective_public_url}/auth/github"


def authorize_link(settings: Settings, account_uid: str, public_url: str | None = None) -> str:
    """A person's own link to authorize GitHub without signing in: single-use, 30 minutes.
    Only for places only they read."""
    data = {"a": account_uid, "j": secrets.token_urlsafe(12)}
    token = sign_token(settings.signing_key(), LINK_PURPOSE, data, LINK_TTL)
    return f"{(public_url or settings.effective_public_url).rstrip('/')}/auth/github?token={token}"


def read_link(settings: Settings, token: str | None) -> tuple[str, str]:
    """(account uid, the link's single-use id) of a valid link."""
    data = read_token(settings.signing_key(), LINK_PURPOSE, token)
    return data["a"], data.get("j", "")


def login_url(settings: Settings, account_uid: str, nonce: str, redirect_uri: str) -> str:
    state = sign_token(settings.signing_key(), STATE_PURPOSE, {"a": account_uid, "n": nonce}, STATE_TTL)
    return _app(settings).get_login_url(redirect_uri=redirect_uri, state=state)


def read_state(settings: Settings, state: str | None) -> tuple[str, str]:
    """(account uid, single-use nonce) from a callback's ``state``; forged or stale → refused."""
    data = read_token(settings.signing_key(), STATE_PURPOSE, state)
    return data["a"], data["n"]


def _grant(access: Any) -> Grant:
    expires = getattr(access, "expires_at", None)
    return Grant(
        access.token,
        getattr(access, "refresh_token", None),
        expires.astimezone(UTC) if expires else None,
    )


def exchange_code(settings: Settings, code: str) -> Grant:
    try:
        return _grant(_app(settings).get_access_token(code))
    except GithubException as exc:
        raise OzError(
            ErrorCode.EXTERNAL_AUTHENTICATION_REQUIRED,
            "GitHub did not accept the authorization code; start again",
            provider="github",
        ) from exc


def refresh(settings: Settings, refresh_token: str) -> Grant:
    return _grant(_app(settings).refresh_access_token(refresh_token))


def login_of(settings: Settings, token: str) -> str:
    return github_client(settings, token).get_user().login


def github_client(settings: Settings, token: str | None = None) -> Github:
    """PyGithub on the gateway's GitHub, as ``token`` (or anonymous): no retries of its own,
    and ``OZGW_OUTBOUND_TIMEOUT_SECONDS`` on every call."""
    return Github(
        auth=Auth.Token(token) if token else None,
        base_url=settings.github_api_url,
        retry=None,
        timeout=settings.outbound_timeout_seconds,
    )
