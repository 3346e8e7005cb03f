"""Monthly budgets, per team and per person, and the most one run may cost.

Who pays follows the seeds' billing: a run a person triggered (Slack, Linear, the API or the
CLI with their own key) draws on that person's budget, and the team's budget holds every run
of the team, so it is checked next; agent-key and scheduled runs draw on the team's alone.
Each budget is a cap for the calendar month (UTC): a person's keeps one person from spending
the team's money, the team's keeps everyone together under what the team pays.  A budget
not set is no limit.

A run is refused before it starts when a budget it draws on is spent
(``insufficient_credits`` for the person's, ``budget_exceeded`` for the team's); once
started it may spend what remains, and no more than its own ``max_cost``: the worker stops
it when it crosses the lower of those (:func:`run_cap`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from core.errors import ErrorCode, OzError, invalid
from core.models import Principal, Run, RunSourceType
from core.prices import dollars
from core.store import changed, utcnow
from core.store.tables import AccountRow, BudgetRow, RunRow

TEAM = ""
"""The ``account_uid`` of the team's own budget."""


def month_start(now: datetime | None = None) -> datetime:
    now = (now or utcnow()).astimezone(UTC)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def billed_to(principal: Principal, source: RunSourceType) -> str:
    """The person whose budget a new run draws on first; :data:`TEAM` when only the team's."""
    if source == RunSourceType.SCHEDULED_AGENT or not principal.is_human:
        return TEAM
    return principal.uid


def set_budget(session: Session, team_uid: str, account_uid: str, monthly_usd: float) -> None:
    if monthly_usd < 0:
        raise invalid("a budget cannot be negative")
    row = session.get(BudgetRow, (team_uid, account_uid))
    if row is None:
        session.add(BudgetRow(team_uid=team_uid, account_uid=account_uid, monthly_usd=monthly_usd, updated_at=utcnow()))
    else:
        row.monthly_usd, row.updated_at = monthly_usd, utcnow()
    session.flush()


def clear_budget(session: Session, team_uid: str, account_uid: str) -> bool:
    budget = (BudgetRow.team_uid == team_uid) & (BudgetRow.account_uid == account_uid)
    return bool(changed(session.execute(delete(BudgetRow).where(budget))))


def spent(session: Session, team_uid: str, account_uid: str, since: datetime) -> float:
    """What runs created since ``since`` cost so far: the team's all (``account_uid`` empty),
    or those one person's budget pays for."""
    conditions = [RunRow.team_uid == team_uid, RunRow.created_at >= since]
    if account_uid != TEAM:
        conditions.append(RunRow.billed_to == account_uid)
    total = session.scalar(select(func.sum(RunRow.inference_cost_usd + RunRow.compute_cost_usd)).where(*conditions))
    return float(total or 0.0)


@dataclass(frozen=True)
class Budget:
    account_uid: str
    who: str
    monthly_usd: float
    spent_usd: float

    @property
    def remaining_usd(self) -> float:
        return max(self.monthly_usd - self.spent_usd, 0.0)


def budgets_of(session: Session, team_uid: str, now: datetime | None = None) -> list[Budget]:
    """The team's budgets this month, the team's first, with what each has spent."""
    since = month_start(now)
    rows = session.execute(
        select(BudgetRow, AccountRow.email)
        .outerjoin(AccountRow, AccountRow.uid == BudgetRow.account_uid)
        .where(BudgetRow.team_uid == team_uid)
        .order_by(BudgetRow.account_uid)
    )
    return [
        Budget(row.account_uid, email or "team", row.monthly_usd, spent(session, team_uid, row.account_uid, since))
        for row, email in rows
    ]


@dataclass(frozen=True)
class Cap:
    """The most a run may cost in all, and what sets that limit (for the message that stops it:
    always ``budget_exceeded``, whichever limit it met)."""

    usd: float
    reason: str


def _pools(run_billed_to: str) -> list[tuple[str, ErrorCode]]:
    pools = [(run_billed_to, ErrorCode.INSUFFICIENT_CREDITS)] if run_billed_to != TEAM else []
    return [*pools, (TEAM, ErrorCode.BUDGET_EXCEEDED)]


def _spent_message(account_uid: str, used: float, limit: float) -> str:
    whose = "the team's" if account_uid == TEAM else "your"
    return (
        f"{dollars(used)} of {whose} {dollars(limit)} monthly budget is spent; it renews on the 1st (UTC). "
        "An admin can raise it with `oz-gateway budget set`."
    )


def _limits(session: Session, team_uid: str, account_uids: list[str]) -> dict[str, float]:
    """The budgets set among ``account_uids``, in one query (every run's creation asks)."""
    table = BudgetRow.__table__.c
    rows = session.connection().execute(
        select(table.account_uid, table.monthly_usd).where(
            table.team_uid == team_uid, table.account_uid.in_(account_uids)
        )
    )
    return {account_uid: monthly for account_uid, monthly in rows}


def require_room(session: Session, team_uid: str, run_billed_to: str, now: datetime | None = None) -> None:
    """Refuse a run whose budgets are spent: the person's first, then the team's."""
    since = month_start(now)
    pools = _pools(run_billed_to)
    limits = _limits(session, team_uid, [account_uid for account_uid, _code in pools])
    for account_uid, code in pools:
        limit = limits.get(account_uid)
        if limit is None:
            continue
        used = spent(session, team_uid, account_uid, since)
        if used >= limit:
            title = "Your monthly budget is spent" if account_uid != TEAM else "The team's monthly budget is spent"
            raise OzError(code, _spent_message(account_uid, used, limit), title=title)


def run_cost(run: Run) -> float:
    return run.inference_cost_usd + run.compute_cost_usd


def run_cap(session: Session, run: Run, now: datetime | None = None) -> Cap | None:
    """The most ``run`` may cost in all: its ``max_cost``, and what its budgets have left
    besides what it already cost (a re-opened run carries its cost).  ``None``: no limit."""
    caps: list[Cap] = []
    if run.config.max_cost is not None:
        caps.append(Cap(run.config.max_cost, "the run's max_cost"))
    since = month_start(now)
    mine = run_cost(run) if run.created_at >= since else 0.0
    pools = _pools(run.billed_to)
    limits = _limits(session, run.team_uid, [account_uid for account_uid, _code in pools])
    for account_uid, _code in pools:
        limit = limits.get(account_uid)
        if limit is not None:
            others = spent(session, run.team_uid, account_uid, since) - mine
            reason = "the creator's monthly budget" if account_uid != TEAM else "the team's monthly budget"
            caps.append(Cap(max(limit - others, 0.0), f"what was left of {reason} ({dollars(limit)})"))
    return min(caps, key=lambda cap: cap.usd) if caps else None
