"""Run events: the typed steps a harness reports, stored as the run's transcript and
published for reporters.

Every event is masked before it is stored or published: no secret the run was given can
reach the transcript, the API or a Slack thread through what the agent printed.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any

import redis
import structlog
from pydantic import BaseModel, Field
from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.store import utcnow
from core.store.tables import RunEventRow

log = structlog.get_logger(__name__)
MASK = "********"
TEXT_LIMIT = 8000


class EventKind(StrEnum):
    MESSAGE = "message"
    THOUGHT = "thought"
    TOOL_CALL = "tool_call"
    COMMAND = "command"
    FILE_EDIT = "file_edit"
    ERROR = "error"
    STATUS = "status"


class RunEvent(BaseModel):
    """One step.  ``kind`` says which of the optional fields carry meaning."""

    kind: EventKind
    text: str | None = None
    tool: str | None = None
    command: str | None = None
    exit_code: int | None = None
    path: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    seq: int | None = None
    at: datetime | None = None

    def headline(self) -> str:
        """A one-line description for status messages ("Working: <headline>")."""
        match self.kind:
            case EventKind.COMMAND:
                return f"running `{_short(self.command or '')}`"
            case EventKind.FILE_EDIT:
                return f"editing {self.path}"
            case EventKind.TOOL_CALL:
                return f"using {self.tool}"
            case EventKind.ERROR:
                return f"error: {_short(self.text or '')}"
            case _:
                return _short(self.text or "")


def _short(text: str, limit: int = 120) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class Masker:
    """Replaces every occurrence of the given secrets (and their common encodings) by a mask."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._variants: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        if not secret or len(secret) < 6:
            return
        new = {
            secret,
            base64.b64encode(secret.encode()).decode().rstrip("="),
            base64.b64encode(f"x-access-token:{secret}".encode()).decode().rstrip("="),
        }
        # Longest first, so a secret containing another is masked whole.
        self._variants = sorted(set(self._variants) | new, key=len, reverse=True)

    def needles(self) -> list[bytes]:
        """Every value (and encoding) it masks, as bytes to search files for (``runner.secret_scan``)."""
        return [variant.encode() for variant in self._variants]

    def text(self, value: str) -> str:
        for variant in self._variants:
            value = value.replace(variant, MASK)
        return value

    def event(self, event: RunEvent) -> RunEvent:
        if not self._variants:
            return event
        masked = json.loads(self.text(event.model_dump_json()))
        return RunEvent.model_validate(masked)


def channel(prefix: str, run_id: str) -> str:
    """One run's own channel: its events and state changes, for its live streams."""
    return f"{prefix}run-events:{run_id}"


def updates_channel(prefix: str) -> str:
    """Every state change and event of every run is announced here (run id + kind) for
    reporters.  Under the gateway's Redis prefix: two gateways sharing one Redis must not
    render each other's runs."""
    return f"{prefix}run-updates"


def record(session: Session, run_id: str, events: list[RunEvent], masker: Masker) -> list[RunEvent]:
    """Append events to the transcript (masked, numbered) and return them as stored."""
    if not events:
        return []
    last = session.scalar(select(func.max(RunEventRow.seq)).where(RunEventRow.run_id == run_id)) or 0
    stored = []
    now = utcnow()
    for offset, event in enumerate(events, start=1):
        clean = masker.event(event)
        if clean.text and len(clean.text) > TEXT_LIMIT:
            clean.text = clean.text[:TEXT_LIMIT] + "…"
        clean = clean.model_copy(update={"seq": last + offset, "at": now})
        payload = clean.model_dump(mode="json", exclude={"seq", "at", "kind"}, exclude_none=True)
        session.add(RunEventRow(run_id=run_id, seq=clean.seq, kind=clean.kind.value, payload=payload, created_at=now))
        stored.append(clean)
    return stored


def publish(connection: redis.Redis | None, prefix: str, run_id: str, events: list[RunEvent]) -> None:
    """Announce stored events; a Redis hiccup loses only the live tail, never the transcript."""
    if connection is None or not events:
        return
    try:
        pipe = connection.pipeline(transaction=False)
        for event in events:
            pipe.publish(channel(prefix, run_id), event.model_dump_json())
        pipe.publish(updates_channel(prefix), json.dumps({"run_id": run_id, "seq": events[-1].seq}))
        pipe.execute()
    except RedisError as exc:
        log.warning("events.publish_failed", run_id=run_id, reason=type(exc).__name__)


def announce(connection: redis.Redis | None, prefix: str, run_id: str, state: str) -> None:
    """Tell reporters a run changed state (they re-render it from the store), and the run's own
    channel, where its live event streams learn it without polling."""
    if connection is None:
        return
    try:
        pipe = connection.pipeline(transaction=False)
        pipe.publish(updates_channel(prefix), json.dumps({"run_id": run_id, "state": state}))
        pipe.publish(channel(prefix, run_id), json.dumps({"state": state}))
        pipe.execute()
    except RedisError as exc:
        log.warning("events.announce_failed", run_id=run_id, reason=type(exc).__name__)


def transcript(session: Session, run_id: str, after: int = 0, limit: int = 1000) -> list[RunEvent]:
    rows = session.scalars(
        select(RunEventRow)
        .where(RunEventRow.run_id == run_id, RunEventRow.seq > after)
        .order_by(RunEventRow.seq)
        .limit(limit)
    )
    return [RunEvent(kind=r.kind, seq=r.seq, at=r.created_at, **r.payload) for r in rows]
