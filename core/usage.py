"""How much a team used the gateway: runs per day by source and by state, and per creator.

The console's usage page draws these; counts come straight from the runs table, so they
reconcile with what the API lists for the same window.  (Cost per run arrives with recorded
usage and prices; see the budgets issue.)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.store.tables import AccountRow, RunRow


@dataclass(frozen=True)
class Usage:
    days: list[str]
    """Each day of the window, oldest first (``YYYY-MM-DD``, UTC)."""
    by_day_source: Counter[tuple[str, str]] = field(default_factory=Counter)
    by_day_state: Counter[tuple[str, str]] = field(default_factory=Counter)
    by_creator: Counter[str] = field(default_factory=Counter)
    """Runs per creator (an email; a cloud agent's runs under its uid)."""

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
    creators = session.execute(
        select(func.coalesce(AccountRow.email, RunRow.creator_uid), func.count())
        .select_from(RunRow)
        .outerjoin(AccountRow, AccountRow.uid == RunRow.creator_uid)
        .where(*window)
        .group_by(func.coalesce(AccountRow.email, RunRow.creator_uid))
    )
    for who, count in creators:
        usage.by_creator[who] += count
    return usage
