"""``oz-gateway run``: start a run like ``oz agent run-cloud``, and list or inspect runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from cli.output import emit
from cli.session import acting_principal, email_option, store_session
from core import events, run_items, runs
from core.models import RunSourceType
from core.models.wire import AmbientAgentConfig, RunAgentRequest, RunListQuery
from core.queue import RunQueue
from core.store import Store

if TYPE_CHECKING:
    from cli.main import Context

RUN_COLUMNS = ("run_id", "state", "source", "title", "created_at")


@click.group(invoke_without_command=True)
@click.option("--prompt", "-p", default=None, help="What the agent should do.")
@click.option("--environment", "-e", "environment_id", default=None, help="Environment uid.")
@click.option("--name", default=None, help="Label for grouping and filtering runs.")
@click.option("--model", "model_id", default=None, help="Model id.")
@click.option("--skill", default=None, help="owner/repo:skill-name")
@email_option
@click.pass_context
def run(
    click_ctx: click.Context,
    prompt: str | None,
    environment_id: str | None,
    name: str | None,
    model_id: str | None,
    skill: str | None,
    email: str | None,
) -> None:
    """Start a cloud agent run (or use `run list` / `run get`)."""
    if click_ctx.invoked_subcommand is not None:
        return
    ctx = click_ctx.obj
    if not prompt and not skill:
        raise click.UsageError("give --prompt (or --skill)")
    settings = ctx.settings
    request = RunAgentRequest(
        prompt=prompt,
        skill=skill,
        config=AmbientAgentConfig(environment_id=environment_id, name=name, model_id=model_id),
    )
    store = Store(settings.effective_database_url)
    store.migrate()
    try:
        with store.session() as session:
            who = acting_principal(session, email)
        queue = RunQueue.from_settings(settings)
        created = runs.create(
            store, queue, who, request, source=RunSourceType.CLI, agent_limit=ctx.settings.agent_limit
        )
    finally:
        store.dispose()
    view = {
        "run_id": created.run.run_id,
        "state": created.run.state.value,
        "title": created.run.title,
        "queued": created.enqueued,
    }
    if not created.enqueued and ctx.output_format == "pretty":
        click.echo("Redis is unreachable: the run is saved and will be queued when it returns.", err=True)
    emit(view, ctx.output_format, ("run_id",))


@run.command("list")
@click.option("--state", "states", multiple=True, help="QUEUED, INPROGRESS, …; repeatable.")
@click.option("--name", default=None)
@click.option("--source", default=None)
@click.option("--limit", type=int, default=20, show_default=True)
@email_option
@click.pass_obj
def run_list(
    ctx: Context, states: tuple[str, ...], name: str | None, source: str | None, limit: int, email: str | None
) -> None:
    query = RunListQuery.model_validate({"state": list(states), "name": name, "source": source, "limit": limit})
    with store_session(ctx.settings) as session:
        page = run_items.list_runs(session, acting_principal(session, email), query)
    emit([r.wire() for r in page.runs], ctx.output_format, RUN_COLUMNS)


@run.command("get")
@click.argument("run_id")
@click.option("--conversation", is_flag=True, help="Show the run's transcript: what the agent said and did.")
@email_option
@click.pass_obj
def run_get(ctx: Context, run_id: str, conversation: bool, email: str | None) -> None:
    with store_session(ctx.settings) as session:
        run = runs.visible_run(session, acting_principal(session, email), run_id)
        if conversation:
            steps = [_step(e) for e in events.transcript(session, run.run_id)]
        else:
            item = run_items.render_item(session, run)
    if conversation:
        emit(steps, ctx.output_format, ("seq", "kind", "what"))
        return
    emit(item.wire(), ctx.output_format, RUN_COLUMNS)


def _step(event: events.RunEvent) -> dict:
    what = event.text or event.command or event.path or event.tool or ""
    return {"seq": event.seq, "kind": event.kind.value, "what": what, "at": event.at.isoformat() if event.at else None}


@run.command("cancel")
@click.argument("run_id")
@email_option
@click.pass_obj
def run_cancel(ctx: Context, run_id: str, email: str | None) -> None:
    """Cancel a queued or working run (its creator, or an admin)."""
    store = Store(ctx.settings.effective_database_url)
    store.migrate()
    try:
        with store.session() as session:
            who = acting_principal(session, email)
        cancelled = runs.cancel(store, RunQueue.from_settings(ctx.settings), who, run_id)
    finally:
        store.dispose()
    emit({"run_id": cancelled.run_id, "state": cancelled.state.value}, ctx.output_format, ("run_id", "state"))
