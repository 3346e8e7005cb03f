"""Reading runs out: filtered, cursor-paginated lists and the Oz ``RunItem`` rendering.

Pagination is keyset, not offset: the cursor carries the last row's sort key and run id,
so a page costs the same however deep it is and rows created meanwhile never shift or
repeat a page.  Rendering loads profiles and artifacts for a whole page in one query each.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, exists, or_, select
from sqlalchemy.orm import Session

from core.errors import invalid
from core.mcp import redact
from core.models import Principal, Run, RunItem, RunState, Scope, UserProfile
from core.models.wire import (
    SANDBOX_STATES,
    TERMINAL_STATES,
    AgentSkill,
    AmbientAgentConfig,
    ListRunsResponse,
    PageInfo,
    RunListQuery,
)
from core.prices import dollars
from core.runs import (
    is_cancellable_type,
    iso_duration,
    iso_seconds,
    queue_position,
    run_from_row,
    run_time,
    visible_run,
)
from core.skills import skill_name
from core.store.tables import AccountRow, AgentRow, ArtifactRow, RunMetadataRow, RunRow

_SORT_COLUMNS = {
    "updated_at": RunRow.updated_at,
    "created_at": RunRow.created_at,
    "title": RunRow.title,
    "agent": RunRow.skill_sort,
}


def _encode_cursor(sort_by: str, order: str, value: Any, run_id: str) -> str:
    payload = {"s": sort_by, "o": order, "v": value.isoformat() if isinstance(value, datetime) else value, "i": run_id}
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, sort_by: str, order: str) -> tuple[Any, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
        value, run_id = payload["v"], payload["i"]
        if payload["s"] != sort_by or payload["o"] != order:
            raise ValueError
        if sort_by in ("updated_at", "created_at"):
            value = datetime.fromisoformat(value)
    except (ValueError, KeyError, TypeError, json.JSONDecodeError):
        raise invalid("cursor is not valid for this query; start again without it") from None
    return value, str(run_id)


def _filters(principal: Principal, query: RunListQuery) -> list[Any]:
    clauses: list[Any] = [
        RunRow.team_uid == principal.team_uid,
        or_(RunRow.scope_type == "Team", RunRow.creator_uid == principal.uid),
    ]
    if query.state:
        clauses.append(RunRow.state.in_([s.value for s in query.state]))
    name = query.name or query.config_name
    if name:
        clauses.append(RunRow.config_name == name)
    simple = {
        RunRow.model_id: query.model_id,
        RunRow.creator_uid: query.creator,
        RunRow.executor_uid: query.executor,
        RunRow.source: query.source.value if query.source else None,
        RunRow.execution_location: query.execution_location,
        RunRow.skill_spec: query.skill_spec or query.skill,
    }
    clauses.extend(column == value for column, value in simple.items() if value is not None)
    if query.ancestor_run_id:
        clauses.append(RunRow.run_id.in_(_descendants(query.ancestor_run_id)))
    if query.environment_id == "empty-environment":
        clauses.append(RunRow.environment_id.is_(None))
    elif query.environment_id:
        clauses.append(RunRow.environment_id == query.environment_id)
    if query.created_after:
        clauses.append(RunRow.created_at > query.created_after)
    if query.created_before:
        clauses.append(RunRow.created_at < query.created_before)
    if query.updated_after:
        clauses.append(RunRow.updated_at > query.updated_after)
    if query.q:
        escaped = query.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        clauses.append(
            or_(
                RunRow.title.ilike(pattern, escape="\\"),
                RunRow.prompt.ilike(pattern, escape="\\"),
                RunRow.skill_spec.ilike(pattern, escape="\\"),
            )
        )
    for key, value in query.metadata.items():
        clauses.append(
            exists().where(
                RunMetadataRow.run_id == RunRow.run_id, RunMetadataRow.key == key, RunMetadataRow.value == value
            )
        )
    if query.artifact_type:
        clauses.append(
            exists().where(ArtifactRow.run_id == RunRow.run_id, ArtifactRow.artifact_type == query.artifact_type)
        )
    return clauses


def _descendants(run_id: str) -> Select:
    """Every run below ``run_id`` in the orchestration tree (children, their children, …)."""
    tree = select(RunRow.run_id).where(RunRow.parent_run_id == run_id).cte("descendants", recursive=True)
    tree = tree.union_all(select(RunRow.run_id).where(RunRow.parent_run_id == tree.c.run_id))
    return select(tree.c.run_id)


def list_runs(session: Session, principal: Principal, query: RunListQuery) -> ListRunsResponse:
    if query.ancestor_run_id:
        visible_run(session, principal, query.ancestor_run_id)  # must exist and be the caller's to see
    column = _SORT_COLUMNS[query.sort_by]
    descending = query.sort_order == "desc"
    clauses = _filters(principal, query)
    if query.cursor:
        value, last_id = _decode_cursor(query.cursor, query.sort_by, query.sort_order)
        if descending:
            clauses.append(or_(column < value, and_(column == value, RunRow.run_id < last_id)))
        else:
            clauses.append(or_(column > value, and_(column == value, RunRow.run_id > last_id)))
    order = (column.desc(), RunRow.run_id.desc()) if descending else (column.asc(), RunRow.run_id.asc())
    rows = list(session.scalars(select(RunRow).where(*clauses).order_by(*order).limit(query.limit + 1)))
    has_next = len(rows) > query.limit
    rows = rows[: query.limit]
    next_cursor = None
    if has_next:
        last = rows[-1]
        next_cursor = _encode_cursor(query.sort_by, query.sort_order, getattr(last, column.key), last.run_id)
    items = render_items(session, [run_from_row(r) for r in rows])
    return ListRunsResponse(runs=items, page_info=PageInfo(has_next_page=has_next, next_cursor=next_cursor))


def _profiles(session: Session, runs: Iterable[Run]) -> dict[str, UserProfile]:
    user_uids = {r.creator_uid for r in runs if r.creator_kind == "user"} | {
        r.executor_uid for r in runs if r.executor_kind == "user"
    }
    agent_uids = {r.creator_uid for r in runs if r.creator_kind == "service_account"} | {
        r.executor_uid for r in runs if r.executor_kind == "service_account"
    }
    profiles: dict[str, UserProfile] = {}
    if user_uids:
        for account in session.scalars(select(AccountRow).where(AccountRow.uid.in_(user_uids))):
            profiles[account.uid] = UserProfile(
                uid=account.uid, email=account.email, display_name=account.display_name or account.email, type="user"
            )
    if agent_uids:
        for agent in session.scalars(select(AgentRow).where(AgentRow.uid.in_(agent_uids))):
            profiles[agent.uid] = UserProfile(uid=agent.uid, display_name=agent.name, type="service_account")
    return profiles


def _artifacts(session: Session, run_ids: list[str]) -> dict[str, list[dict]]:
    by_run: dict[str, list[dict]] = defaultdict(list)
    if run_ids:
        rows = session.execute(
            select(
                ArtifactRow.uid, ArtifactRow.run_id, ArtifactRow.artifact_type, ArtifactRow.created_at, ArtifactRow.data
            )  # not the content: a page must not load every file
            .where(ArtifactRow.run_id.in_(run_ids))
            .order_by(ArtifactRow.created_at)
        )
        for row in rows:
            data = {**row.data, "artifact_uid": row.uid} if row.artifact_type == "FILE" else row.data
            by_run[row.run_id].append({"artifact_type": row.artifact_type, "created_at": row.created_at, "data": data})
    return by_run


def pull_request_urls(item: RunItem) -> list[str]:
    """The pull requests a run opened, in order: every surface's closing post links them."""
    return [a.data.url for a in item.artifacts or [] if a.artifact_type == "PULL_REQUEST"]


def render_items(session: Session, runs: list[Run]) -> list[RunItem]:
    profiles = _profiles(session, runs)
    artifacts = _artifacts(session, [r.run_id for r in runs])
    items = [_item(run, profiles, artifacts.get(run.run_id, [])) for run in runs]
    if len(runs) == 1 and runs[0].state == RunState.QUEUED:  # one run shown to a person: where it stands
        items[0].queue_position = queue_position(session, runs[0])
    return items


def render_item(session: Session, run: Run) -> RunItem:
    return render_items(session, [run])[0]


def _item(run: Run, profiles: dict[str, UserProfile], artifacts: list[dict]) -> RunItem:
    skill = None
    if run.skill_spec:
        skill = AgentSkill(full_path=run.skill_spec.split(":", 1)[-1], name=skill_name(run.skill_spec))
    seconds = run_time(run)
    return RunItem.model_validate(
        {
            "run_id": run.run_id,
            "task_id": run.run_id,
            "title": run.title,
            "prompt": run.prompt,
            "state": run.state,
            "created_at": run.created_at,
            "updated_at": run.updated_at,
            "started_at": run.started_at,
            "agent_config": redact_mcp(run.config),
            "agent_skill": skill,
            "artifacts": artifacts,
            "conversation_id": run.conversation_id,
            "creator": profiles.get(run.creator_uid, UserProfile(uid=run.creator_uid, type=run.creator_kind)),
            "executor": profiles.get(run.executor_uid, UserProfile(uid=run.executor_uid, type=run.executor_kind)),
            "execution_location": run.execution_location,
            "is_run_type_cancellable": is_cancellable_type(run),
            "is_sandbox_running": run.state in SANDBOX_STATES,
            "metadata": run.metadata or None,
            "parent_run_id": run.parent_run_id,
            "run_time": iso_duration(seconds) if seconds or run.started_at else None,
            "scope": Scope(type=run.scope_type, uid=run.team_uid if run.scope_type == "Team" else run.creator_uid),
            "session_id": run.session_id,
            "session_link": run.session_link,
            "source": run.source,
            "status_message": run.status_message,
            "trigger_url": run.origin.trigger_url if run.origin else None,
            "request_usage": _request_usage(run),
            "usage": [u.model_dump() for u in run.usage] or None,
            "worker_host": run.worker_host or None,
        }
    )


def redact_mcp(config: AmbientAgentConfig) -> AmbientAgentConfig:
    """The config as shown to people: MCP credentials redacted (:mod:`core.mcp`)."""
    if not config.mcp_servers:
        return config
    return AmbientAgentConfig.model_validate({**config.model_dump(), "mcp_servers": redact(config.mcp_servers)})


def _request_usage(run: Run) -> dict:
    """The SDK's ``request_usage``: what the run cost so far by the price table, in USD."""
    return {"inference_cost_usd": run.inference_cost_usd, "compute_cost_usd": run.compute_cost_usd}


def cost_of(run: RunItem) -> float:
    usage = run.request_usage
    return (usage.inference_cost_usd or 0.0) + (usage.compute_cost_usd or 0.0) if usage else 0.0


def usage_line(run: RunItem) -> str | None:
    """How long a finished run took, what it cost, and what its agent used, in one line for a
    closing post (``None`` while it is not finished)."""
    if run.state not in TERMINAL_STATES:
        return None
    parts = [f"Took {duration(run_time_seconds(run))}", f"cost {dollars(cost_of(run))}"]
    parts += [f"{u.input_tokens:,} input / {u.output_tokens:,} output tokens ({u.model})" for u in run.usage or []]
    return " · ".join(parts)


def run_time_seconds(run: RunItem) -> float:
    return iso_seconds(run.run_time) if run.run_time else 0.0


def duration(seconds: float) -> str:
    """``2m 05s`` / ``45s``: how every surface shows a span of a run's time."""
    minutes, secs = divmod(max(0, int(seconds)), 60)
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def elapsed(run: RunItem, now: datetime) -> str:
    """Since the run was asked for: until it ended once it has, else until ``now``."""
    end = run.updated_at if run.state in TERMINAL_STATES else now
    return duration((end - run.created_at).total_seconds())


def queue_line(run: RunItem) -> str | None:
    """``3rd in line`` for a QUEUED run; ``None`` otherwise."""
    position = run.queue_position
    if run.state != RunState.QUEUED or not position:
        return None
    if position == 1:
        return "next in line"
    suffix = "th" if 10 <= position % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(position % 10, "th")
    return f"{position}{suffix} in line"
