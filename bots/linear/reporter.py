"""Renders a run into the Linear issue it came from.

In an agent session the run's steps become activities — a ``thought`` for what the agent
says, an ``action`` for a command, file or tool (its parameter named) — throttled to a few
per render and never empty, so the session stays readable and the app's request budget
lasts.  The end is one ``response`` (summary and pull request, which is also attached to
the issue and added to the session's links) or one ``error`` saying what to fix, guarded in
the store so it is posted once per execution.  Classic runs (no session) report in comments.
Text the agent wrote has its @-mentions defused: the agent must not page people.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

import structlog
from redis.asyncio import Redis

from bots.linear import queries
from bots.linear.client import LinearClient, LinearError
from bots.linear.clients import LinearClients
from bots.linear.ref import LinearRef
from core import events
from core.events import EventKind, RunEvent
from core.mentions import strip_mentions
from core.models import Run, RunItem, RunState
from core.models.wire import TERMINAL_STATES
from core.offload import off_loop
from core.reporting import claim_closing, load_for_report, release_closing
from core.run_items import pull_request_urls, queue_line, usage_line
from core.settings import Settings
from core.store import Store

log = structlog.get_logger(__name__)
T = TypeVar("T")
S = RunState
PER_RENDER = 3
"""At most this many step activities per render; the rest of a burst is skipped, not queued."""
GUARD_TTL = 7 * 24 * 3600
VERDICTS = {S.FAILED: "failed", S.ERROR: "stopped on an error", S.CANCELLED: "was stopped"}


def step_activity(event: RunEvent) -> dict | None:
    """One transcript event as an activity's content, or ``None`` for what is not worth showing."""
    match event.kind:
        case EventKind.COMMAND if event.command:
            return {"type": "action", "action": "Running", "parameter": event.command[:200]}
        case EventKind.FILE_EDIT if event.path:
            return {"type": "action", "action": "Editing", "parameter": event.path}
        case EventKind.TOOL_CALL if event.tool:
            return {"type": "action", "action": "Using", "parameter": event.tool}
        case EventKind.MESSAGE | EventKind.THOUGHT if (event.text or "").strip():
            return {"type": "thought", "body": strip_mentions((event.text or "").strip()[:2000])}
    return None


class LinearReporter:
    def __init__(
        self, clients: LinearClients, store: Store, redis: Redis, settings: Settings, executor: Executor
    ) -> None:
        self.clients = clients
        self.store = store
        self.redis = redis
        self.settings = settings
        self.executor = executor

    async def _blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await off_loop(self.executor, fn, *args, **kwargs)

    # --- one-off writes ---------------------------------------------------------------------

    async def activity(self, workspace: str | None, session_id: str, content: dict, *, ephemeral: bool = False) -> None:
        """``workspace``: the organization the session is in (its install's token is used).
        ``ephemeral``: Linear shows it until the session's next activity (a status, not a step)."""
        client = await self.clients.for_workspace(workspace)
        given = {"agentSessionId": session_id, "content": content} | ({"ephemeral": True} if ephemeral else {})
        await client.execute(queries.ACTIVITY_CREATE, input=given)

    async def comment(self, workspace: str | None, issue_id: str, body: str) -> None:
        client = await self.clients.for_workspace(workspace)
        await client.execute(queries.COMMENT_CREATE, input={"issueId": issue_id, "body": body})

    async def started(self, run: Run, issue: dict, *, move_to_started: bool) -> None:
        """The run exists: link it from the session, and move a delegated issue to "started"."""
        ref = LinearRef.of(run)
        if ref is None:
            return
        client = await self.clients.for_workspace(ref.org)
        link = self.settings.run_page(run.run_id)
        if ref.session:
            await client.execute(
                queries.SESSION_UPDATE, id=ref.session, input={"externalUrls": [{"label": "Oz run", "url": link}]}
            )
        if move_to_started and (issue.get("state") or {}).get("type") in ("backlog", "unstarted", "triage"):
            states = (await client.execute(queries.STARTED_STATES, teamId=issue["team"]["id"]))["workflowStates"]
            first = min(states["nodes"], key=lambda s: s.get("position", 0), default=None)
            if first is not None:
                await client.execute(queries.ISSUE_MOVE, id=issue["id"], stateId=first["id"])

    async def render(self, run_id: str) -> None:
        await self.report(*await self._blocking(load_for_report, self.store, run_id))

    # --- rendering (the reporter process's SurfaceReporter) ------------------------------------

    async def report(self, run: Run, item: RunItem) -> None:
        ref = LinearRef.of(run)
        if ref is None:
            return
        if ref.session:
            await self._place_in_line(run, item, ref.org, ref.session)
            await self._steps(run, ref.org, ref.session)
        if item.state in TERMINAL_STATES:
            await self._finish(run, item, ref)

    async def _place_in_line(self, run: Run, item: RunItem, workspace: str | None, session_id: str) -> None:
        """A queued run's place in line, as an ephemeral thought (the session's status until its
        next activity), posted again only when the place changed.  Next in line says nothing: the
        first thought already said "On it", and it starts as soon as a worker is free."""
        line = queue_line(item)
        if line is None or item.queue_position == 1:
            return
        mark = f"{self.settings.redis_prefix}linear:line:{run.run_id}:{run.attempt}"
        shown = await self.redis.get(mark)
        if (shown.decode() if isinstance(shown, bytes) else shown) == line:
            return
        await self.redis.set(mark, line, ex=GUARD_TTL)
        await self.activity(workspace, session_id, {"type": "thought", "body": f"Queued: {line}"}, ephemeral=True)

    async def _steps(self, run: Run, workspace: str | None, session_id: str) -> None:
        mark = f"{self.settings.redis_prefix}linear:seq:{run.run_id}"
        seen = int(await self.redis.get(mark) or 0)
        new = await self._blocking(self.store.call, events.transcript, run.run_id, after=seen, readonly=True)
        if not new:
            return
        await self.redis.set(mark, new[-1].seq or seen, ex=GUARD_TTL)
        contents = [c for c in (step_activity(e) for e in new) if c is not None]
        for content in contents[-PER_RENDER:]:
            await self.activity(workspace, session_id, content)

    async def _finish(self, run: Run, item: RunItem, ref: LinearRef) -> None:
        if not await self._blocking(claim_closing, self.store, run.run_id, run.attempt):
            return
        try:
            client = await self.clients.for_workspace(ref.org)
            prs = pull_request_urls(item)
            for url in prs:
                await self._attach(client, ref.issue, url, item.title)
            if prs and ref.session:
                urls = [{"label": "Pull request", "url": url} for url in prs]
                await client.execute(queries.SESSION_UPDATE, id=ref.session, input={"addedExternalUrls": urls})
            kind, body = closing(self.settings, item, prs)
            if ref.session:
                await self.activity(ref.org, ref.session, {"type": kind, "body": body})
            else:
                await self.comment(ref.org, ref.issue, body)
        except Exception:
            await self._blocking(release_closing, self.store, run.run_id, run.attempt)  # the next render tries again
            raise

    async def _attach(self, client: LinearClient, issue_id: str, url: str, title: str) -> None:
        try:
            await client.execute(queries.ATTACH_GITHUB_PR, issueId=issue_id, url=url, title=title)
        except LinearError as error:
            log.info("linear.github_attach_refused", reason=str(error))
            await client.execute(queries.ATTACH_URL, issueId=issue_id, url=url, title=title)


def closing(settings: Settings, item: RunItem, prs: list[str]) -> tuple[str, str]:
    """The session's last activity (or the issue's last comment): its kind and body."""
    message = strip_mentions(item.status_message.message if item.status_message else "")
    used = usage_line(item)
    if item.state == S.SUCCEEDED:
        body = message or "Done."
        if prs:
            body += "\n\nPull request: " + ", ".join(prs)
        if used:
            body += f"\n\n{used}"
        return "response", body
    code = item.status_message.error_code if item.status_message else None
    body = f"Oz {VERDICTS.get(item.state, 'finished')}: {message}".strip()
    if code:
        body += f"\n\n`{code}` — see {settings.run_page(item.run_id)}"
    if used:
        body += f"\n\n{used}"
    return ("response" if item.state == S.CANCELLED else "error"), body
