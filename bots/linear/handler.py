"""What a Linear delivery does, after it has been answered.

Agents API events (``AgentSessionEvent``) come first: ``created`` posts the first
``thought`` at once — from the web process, never behind the run queue — then maps the
person by email, builds the prompt from the issue and starts the run; ``prompted`` steers
it (a follow-up, a ``stop`` signal, or a new run carrying the conversation).  The classic
path — an ``Issue`` update that made the app its delegate or assignee, a ``Comment`` that
mentions it — starts a run that reports back in comments.  The app's own activities and
comments are never acted on: a bot that triggers itself loops.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog
from aiohttp import web
from pydantic import ValidationError

from bots.linear import queries
from bots.linear.client import LinearError
from bots.linear.clients import LinearClients
from bots.linear.events import (
    AgentActivity,
    AgentSessionEvent,
    CommentCreate,
    IssueUpdate,
    LinearEvent,
    OAuthAppRevoked,
    Text,
)
from bots.linear.ref import LinearRef
from bots.linear.reporter import LinearReporter
from core import asks, identity, inbox, linear_tokens, runs
from core.errors import ErrorCode, OzError
from core.mentions import strip_mentions
from core.models import Account, IntegrationProvider, Origin, Run, RunSourceType
from core.offload import off_loop
from core.prompts import Conversation, Message, build_prompt
from core.queue import RunQueue
from core.settings import Settings
from core.store import Store

log = structlog.get_logger(__name__)
T = TypeVar("T")
LINEAR = IntegrationProvider.LINEAR
WORK_IN_FLIGHT = 8
NO_ACCOUNT = (
    "Unable to locate your account: no gateway account has the email {email}. Ask an admin to create it "
    "(`oz-gateway account create --email {email}`) or change your Linear email to your account's, then try again."
)
FIRST_THOUGHT = {"type": "thought", "body": "On it — reading the issue."}
PRIORITIES = {0: "No priority", 1: "Urgent", 2: "High", 3: "Medium", 4: "Low"}


@dataclass
class Classified:
    """A classified delivery: the person, the issue, what they asked, and where to answer."""

    actor_id: str | None
    actor_email: str | None
    issue_id: str
    request: str
    workspace: str | None = None
    """The Linear organization it came from: its install's token answers."""
    session_id: str | None = None
    delegated: bool = False
    comment_id: str | None = None
    guidance: list[str] = field(default_factory=list)
    prompt_context: str | None = None
    previous_comments: list[Text] = field(default_factory=list)
    stop: bool = False
    """Linear's stop signal on the session."""

    @property
    def origin_key(self) -> str:
        return f"linear:session:{self.session_id}" if self.session_id else f"linear:issue:{self.issue_id}"

    def ask(self) -> asks.Ask:
        return asks.Ask(LINEAR, self.origin_key, self.request, stop=self.stop)


@dataclass
class LinearFrontDoor:
    settings: Settings
    store: Store
    queue: RunQueue | None
    executor: Executor
    clients: LinearClients
    reporter: LinearReporter
    tasks: set[asyncio.Task] = field(default_factory=set)
    _busy: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(WORK_IN_FLIGHT))

    def spawn(self, body: dict, key: str | None = None) -> None:
        """Handle the delivery after the answer; ``key`` is its place in the inbox
        (``core/inbox.py``): done when handled, released when handling failed, so Linear's
        redelivery — or the inbox's sweep — handles it rather than dropping it as a duplicate."""
        task = asyncio.get_running_loop().create_task(self._guarded(body, key))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def take_up(self, key: str, body: dict) -> None:
        """A kept delivery nobody finished (its web process died after the answer)."""
        await self._guarded(body, key)

    async def _guarded(self, body: dict, key: str | None = None) -> None:
        await inbox.handle_kept(
            self.executor,
            self.store,
            key,
            self._after_answer(body),
            failure="linear.delivery_failed",
            type=body.get("type"),
            action=body.get("action"),
        )

    async def _after_answer(self, body: dict) -> None:
        parsed = _parse(body)
        if parsed is None:
            return
        event, handler = parsed
        # The first thought goes out before this session queues behind others' slow work:
        # Linear expects it within 10 s of ``created``, however busy the gateway is.
        if isinstance(event, AgentSessionEvent) and event.action == "created":
            await self.reporter.activity(event.organization_id, event.agent_session.id, FIRST_THOUGHT)
        async with self._busy:
            await handler(self, event)

    async def _blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await off_loop(self.executor, fn, *args, **kwargs)

    # --- one handler per event, an explicit list of ignored ones ------------------------------

    async def app_user_id(self, event: LinearEvent) -> str | None:
        return event.app_user_id or await self.clients.app_user(event.organization_id)

    async def _session_created(self, event: AgentSessionEvent) -> None:
        session = event.agent_session
        trigger = Classified(
            actor_id=session.creator_id,
            actor_email=session.creator.email if session.creator else None,
            issue_id=session.issue_id,
            request=_request_text(session.comment.body if session.comment else None)
            or f"Work on this issue: {session.issue.title}",
            workspace=event.organization_id,
            session_id=session.id,
            delegated=not session.comment_id,
            comment_id=session.comment_id,
            guidance=event.guidance_texts,
            prompt_context=event.prompt_context,
            previous_comments=event.previous_comments,
        )
        await self._start_or_steer(trigger)

    async def _session_prompted(self, event: AgentSessionEvent) -> None:
        session, activity = event.agent_session, event.agent_activity or AgentActivity()
        if activity.user_id and activity.user_id == await self.app_user_id(event):
            return
        trigger = Classified(
            actor_id=activity.user_id,
            actor_email=None,
            issue_id=session.issue_id,
            request=_request_text(activity.content.body),
            workspace=event.organization_id,
            session_id=session.id,
            guidance=event.guidance_texts,
            stop=activity.signal == "stop",
        )
        await self._start_or_steer(trigger)

    async def _issue_updated(self, event: IssueUpdate) -> None:
        data, before = event.data, event.updated_from
        app = await self.app_user_id(event)
        now = {"delegateId": data.delegate_id, "assigneeId": data.assignee_id}
        became = [f for f in now if f in before and before[f] != app and now[f] == app]
        actor = event.actor
        if not became or actor.id == app or actor.type not in (None, "user"):
            return
        trigger = Classified(
            actor_id=actor.id,
            actor_email=actor.email,
            issue_id=data.id,
            request=f"Work on this issue: {data.title}",
            workspace=event.organization_id,
            delegated=True,
        )
        await self._start_or_steer(trigger)

    async def _comment_created(self, event: CommentCreate) -> None:
        data, actor = event.data, event.actor
        app = await self.app_user_id(event)
        if data.user_id == app or data.bot_actor or actor.type not in (None, "user"):
            return
        if not re.search(r"(^|\s)@oz\b", data.body or "", re.IGNORECASE):
            return
        trigger = Classified(
            actor_id=actor.id or data.user_id,
            actor_email=actor.email,
            issue_id=data.issue_id,
            # A bare mention asks for the issue itself, as a mention that opens a session does.
            request=_request_text(data.body) or f"Work on this issue: {data.issue.title}",
            comment_id=data.id,
            workspace=event.organization_id,
        )
        await self._start_or_steer(trigger)

    async def _app_revoked(self, event: OAuthAppRevoked) -> None:
        """The app was uninstalled from a workspace (or its grant revoked): its install's tokens
        go now, and ``integration list`` says so, rather than the next refresh finding out."""
        organization = event.organization_id
        ours = self.settings.linear_client_id
        if not organization or (ours and event.oauth_client_id not in (None, ours)):
            return
        reason = "the app was uninstalled from this workspace (Linear sent OAuthApp revoked)"
        if await self._blocking(self.store.call, linear_tokens.uninstalled, organization, reason):
            log.warning("linear.app_uninstalled", organization=organization)

    # --- the common path -------------------------------------------------------------------

    async def _start_or_steer(self, trigger: Classified) -> None:
        account = await self._account(trigger)
        if account is None:
            return
        ask = trigger.ask()
        found = await self._blocking(
            self.store.call, asks.situation, account, ask, setup_url=self.settings.console_url, readonly=True
        )
        steered = await self._blocking(asks.steer, self.store, self.queue, found, ask)
        match steered:
            case asks.NothingToStop():
                await self._say(trigger, {"type": "response", "body": "Nothing is running."})
            case asks.Stopped(run=run):
                await self.reporter.render(run.run_id)
            case asks.FollowedUp():
                await self._say(trigger, {"type": "thought", "body": "Got it — adding that to the work."})
            case asks.Refused(error=error):  # e.g. someone else's run: only its creator (or an admin) steers it
                await self._refuse(trigger, error, None)
            case asks.Proceed():
                await self._start(trigger, steered)

    async def _say(self, trigger: Classified, content: dict) -> None:
        """An activity in the trigger's agent session (a comment path has none: it stays quiet)."""
        if trigger.session_id:
            await self.reporter.activity(trigger.workspace, trigger.session_id, content)

    async def _account(self, trigger: Classified) -> Account | None:
        email = trigger.actor_email
        if not email and trigger.actor_id:
            try:
                client = await self.clients.for_workspace(trigger.workspace)
                email = (await client.execute(queries.USER, id=trigger.actor_id))["user"].get("email")
            except LinearError:
                email = None
        account = await self._blocking(self.store.call, identity.account_for_email, email, readonly=True)
        if account is None:
            log.info("linear.unknown_person", issue=trigger.issue_id)
            await self._refuse(
                trigger,
                OzError(ErrorCode.EXTERNAL_AUTHENTICATION_REQUIRED, provider="linear"),
                NO_ACCOUNT.format(email=email or "(hidden)"),
            )
        return account

    async def _start(self, trigger: Classified, go: asks.Proceed) -> Run | None:
        key = _idempotency_key(trigger, go.previous)
        existing = await self._blocking(runs.by_idempotency_key, self.store, go.account.team_uid, key)
        if existing is not None:  # the same mention, delivered the other way (comment vs. session)
            await self._join(existing, trigger)
            return existing
        if trigger.session_id is None:
            await self.reporter.comment(trigger.workspace, trigger.issue_id, "On it — Oz is starting on this issue.")
        client = await self.clients.for_workspace(trigger.workspace)
        issue = (await client.execute(queries.ISSUE, id=trigger.issue_id))["issue"]
        app = await self.clients.app_user(trigger.workspace)
        prompt = build_prompt(
            trigger.request,
            _conversation(issue, trigger, app),
            instructions="\n\n".join(x for x in [go.defaults.instructions, *trigger.guidance] if x) or None,
            requester=go.account.display_name or go.account.email,
        )
        ref = LinearRef(
            issue=trigger.issue_id,
            team=issue["team"]["id"],
            delegated="1" if trigger.delegated else "",
            session=trigger.session_id,
            org=trigger.workspace,
        )
        started = await self._blocking(
            asks.start,
            self.store,
            self.queue,
            go,
            source=RunSourceType.LINEAR,
            prompt=prompt,
            title=f"{issue['identifier']}: {issue['title']}",
            origin=Origin(
                source=RunSourceType.LINEAR, trigger_url=issue["url"], ref=ref.stored(), key=trigger.origin_key
            ),
            idempotency_key=key,
            metadata={"ticket_id": issue["identifier"], "ticket_source": "LINEAR"},
            agent_limit=self.settings.agent_limit,
        )
        if isinstance(started, asks.Refused):
            await self._refuse(trigger, started.error, None)
            return None
        run = started.run
        if not started.created:  # the other delivery of this mention created it meanwhile
            await self._join(run, trigger)
            return run
        log.info("linear.run_started", run_id=run.run_id, issue=issue["identifier"])
        await self.reporter.started(run, issue, move_to_started=trigger.delegated)
        await self.reporter.render(run.run_id)  # its place in line, at once
        return run

    async def _join(self, run: Run, trigger: Classified) -> None:
        """A mention Linear delivered twice — as a ``Comment`` and as an ``AgentSessionEvent`` for
        the session it opened on that comment — has one run; the session, whichever came second,
        gets its steps and its end."""
        ref = LinearRef.of(run)
        if not trigger.session_id or (ref is not None and ref.session):
            log.info("linear.mention_already_running", run_id=run.run_id)
            return
        joined = await self._blocking(
            self.store.call, runs.join_conversation, run.run_id, trigger.origin_key, {"session": trigger.session_id}
        )
        log.info("linear.session_joined_run", run_id=run.run_id, session=trigger.session_id)
        await self.reporter.started(joined, {}, move_to_started=False)
        await self.reporter.render(run.run_id)

    async def _refuse(self, trigger: Classified, error: OzError, text: str | None) -> None:
        body = text or f"{error.message}\n\n`{error.code.value}`"
        if trigger.session_id:
            error_activity = {"type": "error", "body": strip_mentions(body)}
            await self.reporter.activity(trigger.workspace, trigger.session_id, error_activity)
        else:
            await self.reporter.comment(trigger.workspace, trigger.issue_id, body)


EVENT_HANDLERS: dict[tuple[str | None, str | None], tuple[type[LinearEvent], Callable[..., Awaitable[None]]]] = {
    ("AgentSessionEvent", "created"): (AgentSessionEvent, LinearFrontDoor._session_created),
    ("AgentSessionEvent", "prompted"): (AgentSessionEvent, LinearFrontDoor._session_prompted),
    ("Issue", "update"): (IssueUpdate, LinearFrontDoor._issue_updated),
    ("Comment", "create"): (CommentCreate, LinearFrontDoor._comment_created),
    ("OAuthApp", "revoked"): (OAuthAppRevoked, LinearFrontDoor._app_revoked),
}
IGNORED_EVENTS = {("Issue", "create"), ("Issue", "remove"), ("Comment", "update"), ("Comment", "remove")}
"""Known and deliberately not acted on (answered 200 like any delivery)."""

LINEAR_FRONT = web.AppKey("linear_front", LinearFrontDoor)


def _parse(body: dict) -> tuple[LinearEvent, Callable[..., Awaitable[None]]] | None:
    """The delivery as its event's model, with its handler; ``None`` (logged) for an event the
    gateway does not act on or a body its model refuses — nothing to retry: the same body
    would fail again."""
    kind = (body.get("type"), body.get("action"))
    known = EVENT_HANDLERS.get(kind)
    if known is None:
        # Known-and-ignored is routine; anything else means the webhook subscribes to more than we use.
        note = log.debug if kind in IGNORED_EVENTS else log.info
        note("linear.unhandled_event", type=kind[0], action=kind[1])
        return None
    model, handler = known
    try:
        return model.model_validate(body), handler
    except ValidationError as error:
        log.warning("linear.malformed_event", type=kind[0], action=kind[1], errors=error.error_count())
        return None


def _request_text(body: str | None) -> str:
    return " ".join(re.sub(r"(^|\s)@oz\b[:,]?", " ", body or "", flags=re.IGNORECASE).split())


def _idempotency_key(trigger: Classified, previous: Run | None) -> str:
    """One run per mention however Linear delivers it (a comment has one id on both paths);
    otherwise one per conversation and the run it continues."""
    if trigger.comment_id:
        return f"linear:comment:{trigger.comment_id}"
    return f"{trigger.origin_key}::{previous.run_id if previous else 'first'}"


def _conversation(issue: dict, trigger: Classified, app_user: str | None) -> Conversation:
    comments = []
    for c in (issue.get("comments") or {}).get("nodes") or []:
        user = c.get("user") or {}
        if c.get("botActor") or (app_user and user.get("id") == app_user) or c.get("id") == trigger.comment_id:
            continue
        comments.append(Message(user.get("name") or "someone", c.get("body") or ""))
    if not comments and trigger.previous_comments:
        comments = [
            Message("a teammate", c.body or "") for c in trigger.previous_comments if c.id != trigger.comment_id
        ]
    labels = ", ".join(n["name"] for n in (issue.get("labels") or {}).get("nodes") or [])
    facts = [
        ("Issue", issue["identifier"]),
        ("Team", (issue.get("team") or {}).get("name", "")),
        ("Project", (issue.get("project") or {}).get("name", "")),
        ("Labels", labels),
        ("Priority", issue.get("priorityLabel") or PRIORITIES.get(issue.get("priority") or 0, "")),
        ("State", (issue.get("state") or {}).get("name", "")),
        ("Context from Linear", trigger.prompt_context or ""),
    ]
    opening = Message("Issue description", issue["description"]) if issue.get("description") else None
    return Conversation(
        kind="Linear issue",
        title=issue["title"],
        url=issue["url"],
        opening=opening,
        messages=comments,
        facts=facts,
    )
