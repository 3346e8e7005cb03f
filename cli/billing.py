"""``oz-gateway schedule …``, ``budget …`` and ``usage``: scheduled agents, what runs may spend,
and what they spent."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from cli.output import emit
from cli.session import acting_principal, email_option, store_session
from core import budgets, schedules, usage
from core.accounts import account_by_email
from core.permissions import require_admin
from core.prices import dollars
from core.schedules import ScheduleCreate, ScheduleItem, ScheduleUpdate

if TYPE_CHECKING:
    from cli.main import Context

SCHEDULE_COLUMNS = ("uid", "name", "cron", "timezone", "status", "next_fire_at", "last_run", "paused_reason")


def _schedule_view(item: ScheduleItem) -> dict[str, Any]:
    view = item.wire()
    last = item.last_run
    if last is None:
        view["last_run"] = "never"
    else:
        outcome = last.state.value if last.state else ("refused: " + (last.error or "") if last.error else "starting")
        view["last_run"] = f"{last.fire_time:%Y-%m-%d %H:%M}Z {outcome}" + (f" ({last.run_id})" if last.run_id else "")
    view.setdefault("next_fire_at", "-")
    view.setdefault("paused_reason", "")
    return view


@click.group("schedule")
def schedule() -> None:
    """Scheduled agents: cron schedules that start a run each time they fire (the scheduler process fires them)."""


def _spec_options(create: bool) -> Any:
    def wrap(fn: Any) -> Any:
        options = [
            click.option("--name", "-n", required=create, default=None, help="The runs' title."),
            click.option("--cron", required=create, default=None, help='Five fields, e.g. "0 9 * * 1".'),
            click.option("--timezone", default=None, help="IANA zone the cron is read in (default UTC)."),
            click.option("--prompt", "-p", default=None, help="What each run is asked to do."),
            click.option("--skill", default=None, help="owner/repo:skill-name, instead of a prompt."),
            click.option("--environment", "-e", "environment_id", required=create, default=None),
            click.option("--agent", "agent_uid", default=None, help="Run as this cloud agent (default: as you)."),
            click.option("--model", "model_id", default=None),
        ]
        for option in reversed(options):
            fn = option(fn)
        return fn

    return wrap


def _given(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


@schedule.command("create")
@_spec_options(create=True)
@email_option
@click.pass_obj
def schedule_create(ctx: Context, email: str | None, **fields: Any) -> None:
    """A schedule that starts a run (a prompt or a skill, in an environment) each time its cron fires."""
    spec = ScheduleCreate.model_validate(_given(**fields))
    with store_session(ctx.settings) as session:
        item = schedules.create(session, acting_principal(session, email), spec, ctx.settings.agent_limit)
    emit(_schedule_view(item), ctx.output_format, SCHEDULE_COLUMNS)


@schedule.command("list")
@email_option
@click.pass_obj
def schedule_list(ctx: Context, email: str | None) -> None:
    """Each schedule with its next fire time and its last run's state."""
    with store_session(ctx.settings) as session:
        found = schedules.list_schedules(session, acting_principal(session, email))
    emit([_schedule_view(s) for s in found.schedules], ctx.output_format, SCHEDULE_COLUMNS[:7])


@schedule.command("get")
@click.argument("uid")
@email_option
@click.pass_obj
def schedule_get(ctx: Context, uid: str, email: str | None) -> None:
    """One schedule: what it runs, when next, how its last run went, why it is paused."""
    with store_session(ctx.settings) as session:
        item = schedules.get(session, acting_principal(session, email), uid)
    emit(_schedule_view(item), ctx.output_format, SCHEDULE_COLUMNS)


@schedule.command("update")
@click.argument("uid")
@_spec_options(create=False)
@email_option
@click.pass_obj
def schedule_update(ctx: Context, uid: str, email: str | None, **fields: Any) -> None:
    """Change what you name (its creator or an admin); the next fire time is worked out again."""
    changes = ScheduleUpdate.model_validate(_given(**fields))
    with store_session(ctx.settings) as session:
        who = acting_principal(session, email)
        item = schedules.update_schedule(session, who, uid, changes, ctx.settings.agent_limit)
    emit(_schedule_view(item), ctx.output_format, SCHEDULE_COLUMNS)


def _set_paused(ctx: Context, uid: str, email: str | None, paused: bool) -> None:
    with store_session(ctx.settings) as session:
        who = acting_principal(session, email)
        item = schedules.set_paused(session, who, uid, paused, ctx.settings.agent_limit)
    emit(_schedule_view(item), ctx.output_format, SCHEDULE_COLUMNS)


@schedule.command("pause")
@click.argument("uid")
@email_option
@click.pass_obj
def schedule_pause(ctx: Context, uid: str, email: str | None) -> None:
    """Stop firing until resumed."""
    _set_paused(ctx, uid, email, True)


@schedule.command("resume")
@click.argument("uid")
@email_option
@click.pass_obj
def schedule_resume(ctx: Context, uid: str, email: str | None) -> None:
    """Fire again from the next cron time on (what the pause skipped is not caught up)."""
    _set_paused(ctx, uid, email, False)


@schedule.command("delete")
@click.argument("uid")
@email_option
@click.pass_obj
def schedule_delete(ctx: Context, uid: str, email: str | None) -> None:
    """Remove it; the runs it started stay."""
    with store_session(ctx.settings) as session:
        schedules.delete(session, acting_principal(session, email), uid)
    click.echo(f"Deleted schedule {uid}")


# --- budgets ------------------------------------------------------------------------------------

BUDGET_COLUMNS = ("who", "monthly", "spent", "remaining")


@click.group("budget")
def budget() -> None:
    """Monthly spending limits: the team's, and each person's (runs a person starts count against both)."""


def _budget_account(session: Any, team: bool, person: str | None, team_uid: str) -> str:
    if team == bool(person):
        raise click.UsageError("say whose budget: --team or --person EMAIL")
    if team:
        return budgets.TEAM
    account = account_by_email(session, person or "")
    if account.team_uid != team_uid:
        raise click.UsageError(f"{person} is not on your team")
    return account.uid


@budget.command("set")
@click.argument("monthly_usd", type=click.FloatRange(min=0))
@click.option("--team", "team", is_flag=True, help="The team's budget: every run of the team counts.")
@click.option("--person", default=None, help="One person's budget (their email): the runs they start count.")
@email_option
@click.pass_obj
def budget_set(ctx: Context, monthly_usd: float, team: bool, person: str | None, email: str | None) -> None:
    """Set a monthly budget in USD (an admin only)."""
    with store_session(ctx.settings) as session:
        who = acting_principal(session, email)
        require_admin(session, who, "set budgets")
        budgets.set_budget(session, who.team_uid, _budget_account(session, team, person, who.team_uid), monthly_usd)
        views = budgets.budgets_of(session, who.team_uid)
    emit([_budget_view(b) for b in views], ctx.output_format, BUDGET_COLUMNS)


@budget.command("clear")
@click.option("--team", "team", is_flag=True)
@click.option("--person", default=None)
@email_option
@click.pass_obj
def budget_clear(ctx: Context, team: bool, person: str | None, email: str | None) -> None:
    """Remove a budget: no limit from then on."""
    with store_session(ctx.settings) as session:
        who = acting_principal(session, email)
        require_admin(session, who, "clear budgets")
        budgets.clear_budget(session, who.team_uid, _budget_account(session, team, person, who.team_uid))
        views = budgets.budgets_of(session, who.team_uid)
    emit([_budget_view(b) for b in views], ctx.output_format, BUDGET_COLUMNS)


@budget.command("list")
@email_option
@click.pass_obj
def budget_list(ctx: Context, email: str | None) -> None:
    """The team's budgets this month and what each has spent."""
    with store_session(ctx.settings) as session:
        views = budgets.budgets_of(session, acting_principal(session, email).team_uid)
    emit([_budget_view(b) for b in views], ctx.output_format, BUDGET_COLUMNS)


def _budget_view(budget: budgets.Budget) -> dict[str, Any]:
    return {
        "who": budget.who,
        "monthly": dollars(budget.monthly_usd),
        "spent": dollars(budget.spent_usd),
        "remaining": dollars(budget.remaining_usd),
        "monthly_usd": budget.monthly_usd,
        "spent_usd": round(budget.spent_usd, 6),
    }


# --- usage ----------------------------------------------------------------------------------------

USAGE_COLUMNS = ("key", "runs", "input_tokens", "output_tokens", "container_seconds", "cost")


def _day(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD) or time") from None


@click.command("usage")
@click.option("--by", type=click.Choice(usage.GROUPINGS), default="day", show_default=True)
@click.option("--since", default=None, help="YYYY-MM-DD (UTC); default: the 1st of this month.")
@click.option("--until", default=None, help="YYYY-MM-DD (UTC, exclusive); default: now.")
@email_option
@click.pass_obj
def usage_command(ctx: Context, by: usage.Grouping, since: str | None, until: str | None, email: str | None) -> None:
    """What the team's runs used and cost, by day, source, creator or model, with the total last."""
    start, end = usage.window(_day(since), _day(until))
    with store_session(ctx.settings) as session:
        found = usage.report(session, acting_principal(session, email).team_uid, start, end, by)
    if ctx.output_format == "json":
        emit(found.wire(), ctx.output_format, USAGE_COLUMNS)
        return
    rows = [{**line.model_dump(), "cost": dollars(line.cost_usd)} for line in [*found.lines, found.total]]
    emit(rows, ctx.output_format, USAGE_COLUMNS)
