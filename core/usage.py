"""How much a team used the gateway: runs per day by source and by state; runs, tokens and
cost by day, source, creator or model.

The console's usage page draws these; counts come straight from the runs table, so they
reconcile with what the API lists for the same window.  :func:`report` adds what runs used
and cost (tokens per model, container time, USD by ``core/prices.py``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import computed_field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.budgets import month_start
from core.errors import invalid
from core.models import ModelUsage
from core.models.wire import WireModel
from core.store import utcnow
from core.store.tables import AccountRow, RunRow


@dataclass(frozen=True)
class Usage:
    days: list[str]
    """Each day of the window, oldest first (``YYYY-MM-DD``, UTC)."""
    by_day_source: Counter[tuple[str, str]] = field(default_factory=Counter)
    by_day_state: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.by_day_state.values())


def runs_per_day(session: Session, team_uid: str, first_day: datetime, days: int) -> Usage:
    """Runs the team created from ``first_day`` (a UTC midnight) for ``days`` days."""
    end = first_day + timedelta(days=days)
    names = [(first_day + timedelta(days=n)).strftime("%Y-%m-%d") for n in range(days)]
    day = func.date(RunRow.created_at)
    window = (RunRow.team_uid == team_uid, RunRow.created_at >= first_day, RunRow.created_at < end)
    usage = Usage(names)
    rows = session.execute(
        select(day, RunRow.source, RunRow.state, func.count()).where(*window).group_by(day, RunRow.source, RunRow.state)
    )
    for when, source, state, count in rows:
        usage.by_day_source[(str(when), source)] += count
        usage.by_day_state[(str(when), state)] += count
    return usage


# --- cost and tokens, for `oz-gateway usage` and GET /api/v1/usage ------------------------------

Grouping = Literal["day", "source", "creator", "model"]
GROUPINGS: tuple[Grouping, ...] = ("day", "source", "creator", "model")


class UsageLine(WireModel):
    key: str
    runs: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    container_seconds: float = 0.0
    inference_cost_usd: float = 0.0
    compute_cost_usd: float = 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def cost_usd(self) -> float:
        return round(self.inference_cost_usd + self.compute_cost_usd, 6)

    def add(
        self,
        *,
        runs: int = 0,
        tokens: ModelUsage | None = None,
        seconds: float = 0.0,
        inference: float = 0.0,
        compute: float = 0.0,
    ) -> None:
        self.runs += runs
        if tokens is not None:
            self.input_tokens += tokens.input_tokens
            self.output_tokens += tokens.output_tokens
            self.cached_input_tokens += tokens.cached_input_tokens
        self.container_seconds = round(self.container_seconds + seconds, 3)
        self.inference_cost_usd = round(self.inference_cost_usd + inference, 6)
        self.compute_cost_usd = round(self.compute_cost_usd + compute, 6)


class UsageReport(WireModel):
    since: datetime
    until: datetime
    by: Grouping
    lines: list[UsageLine]
    """One per day, source, creator or model, in order.  By model, a line holds that model's
    tokens and inference cost; container time belongs to no model and shows in the total only."""
    total: UsageLine


def window(since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    """A report's window as the CLI and the API take it: a time without a zone is UTC; from the
    1st of this month (UTC, as budgets count) until now when not given."""
    start = since.replace(tzinfo=since.tzinfo or UTC) if since else month_start()
    end = until.replace(tzinfo=until.tzinfo or UTC) if until else utcnow() + timedelta(seconds=1)
    return start, end


def report(session: Session, team_uid: str, since: datetime, until: datetime, by: Grouping) -> UsageReport:
    """What the team's runs created in ``[since, until)`` used and cost, grouped ``by``; the
    total is the runs' own figures summed, so it reconciles with the runs the API lists."""
    if by not in GROUPINGS:
        raise invalid(f"by must be one of {', '.join(GROUPINGS)}")
    if until <= since:
        raise invalid("until must be after since")
    rows = session.execute(
        select(
            RunRow.created_at,
            RunRow.source,
            func.coalesce(AccountRow.email, RunRow.creator_uid),
            RunRow.usage,
            RunRow.run_time_seconds,
            RunRow.inference_cost_usd,
            RunRow.compute_cost_usd,
        )
        .outerjoin(AccountRow, AccountRow.uid == RunRow.creator_uid)
        .where(RunRow.team_uid == team_uid, RunRow.created_at >= since, RunRow.created_at < until)
        .order_by(RunRow.created_at)
    )
    lines: dict[str, UsageLine] = {}
    total = UsageLine(key="total")
    for created, source, creator, usage, seconds, inference, compute in rows:
        models = [ModelUsage.model_validate(u) for u in usage or []]
        total.add(runs=1, seconds=seconds or 0.0, inference=inference or 0.0, compute=compute or 0.0)
        for model in models:
            total.add(tokens=model)
        if by == "model":
            for model in models:
                line = lines.setdefault(model.model, UsageLine(key=model.model))
                line.add(runs=1, tokens=model, inference=model.priced_usd or 0.0)
            continue
        key = {"day": created.strftime("%Y-%m-%d"), "source": source, "creator": creator}[by]
        line = lines.setdefault(key, UsageLine(key=key))
        line.add(runs=1, seconds=seconds or 0.0, inference=inference or 0.0, compute=compute or 0.0)
        for model in models:
            line.add(tokens=model)
    ordered = sorted(lines.values(), key=lambda line: line.key if by == "day" else (-line.cost_usd, line.key))
    return UsageReport(since=since, until=until, by=by, lines=ordered, total=total)
