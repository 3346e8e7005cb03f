"""``/github/webhook``: the team GitHub App's deliveries.

Verified (``X-Hub-Signature-256``, HMAC-SHA256 of the raw body, constant-time compare),
deduplicated on ``X-GitHub-Delivery``, answered at once.  Handled events keep the App's
installation scope current; known events we do not act on answer 200 and are listed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import structlog
from aiohttp import web
from pydantic import BaseModel
from sqlalchemy.orm import Session

from bots import webhooks
from bots.web import ASYNC_REDIS, SETTINGS, in_session, public
from core import github_orgs

log = structlog.get_logger(__name__)
DEDUPE_SECONDS = 24 * 3600


class GitHubAccount(BaseModel):
    login: str


class Repository(BaseModel):
    full_name: str


class Installation(BaseModel):
    id: int
    account: GitHubAccount
    repository_selection: str = "selected"
    suspended_at: object | None = None


class InstallationEvent(BaseModel):
    action: str
    installation: Installation
    repositories: list[Repository] | None = None


class InstallationRepositoriesEvent(BaseModel):
    action: str
    installation: Installation
    repository_selection: str = "selected"
    repositories_added: list[Repository] = []
    repositories_removed: list[Repository] = []


def on_installation(session: Session, payload: dict) -> str:
    event = InstallationEvent.model_validate(payload)
    inst = event.installation
    if event.action == "deleted":
        github_orgs.delete_installation(session, inst.id)
    else:
        repos = [r.full_name for r in event.repositories] if event.repositories is not None else None
        github_orgs.save_installation(
            session,
            inst.id,
            inst.account.login,
            inst.repository_selection,
            repos,
            suspended=event.action == "suspend" or (inst.suspended_at is not None and event.action != "unsuspend"),
        )
    return f"installation {event.action}"


def on_installation_repositories(session: Session, payload: dict) -> str:
    event = InstallationRepositoriesEvent.model_validate(payload)
    github_orgs.change_repositories(
        session,
        event.installation.id,
        event.repository_selection,
        [r.full_name for r in event.repositories_added],
        [r.full_name for r in event.repositories_removed],
    )
    return f"installation_repositories {event.action}"


EVENT_HANDLERS: dict[str, Callable[[Session, dict], str]] = {
    "installation": on_installation,
    "installation_repositories": on_installation_repositories,
}
IGNORED_EVENTS = frozenset(
    {
        "ping",
        "github_app_authorization",
        "installation_target",
        "push",
        "pull_request",
        "issues",
        "issue_comment",
        "pull_request_review_comment",
        "check_suite",
        "check_run",
    }
)


@public
async def receive(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    if settings.github_webhook_secret is None:
        raise webhooks.not_configured("github", "the GitHub App webhook secret is not configured")
    body = await request.read()
    secret = settings.github_webhook_secret.get_secret_value().encode()
    if not webhooks.signed(secret, body, request.headers.get("X-Hub-Signature-256"), prefix="sha256="):
        log.warning("github.webhook_bad_signature", delivery=request.headers.get("X-GitHub-Delivery"))
        raise webhooks.bad_signature("github")
    event = request.headers.get("X-GitHub-Event", "")
    # The delivery id header is not signed: a replayed body under a new id must still be a duplicate.
    delivery = hashlib.sha256(body).hexdigest()
    if event not in EVENT_HANDLERS:
        if event in IGNORED_EVENTS:
            return web.json_response({"ok": True, "ignored": event})
        raise webhooks.malformed("github", f"unsupported event {event!r}")
    redis = request.app[ASYNC_REDIS]
    if not await webhooks.claim(redis, settings, "github", delivery, DEDUPE_SECONDS):
        return web.json_response({"ok": True, "duplicate": request.headers.get("X-GitHub-Delivery", delivery)})
    try:
        payload = json.loads(body)
        result = await in_session(request, EVENT_HANDLERS[event], payload)
    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, nested past the parser, or not the model
        await webhooks.release(redis, settings, "github", delivery)
        raise webhooks.malformed("github", f"malformed {event} payload: {str(exc)[:300]}") from None
    except BaseException:
        await webhooks.release(redis, settings, "github", delivery)  # GitHub's redelivery is handled
        raise
    log.info("github.webhook", github_event=event, delivery=delivery, result=result)
    return web.json_response({"ok": True, "handled": result})
