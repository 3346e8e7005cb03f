"""``oz-gateway``: the composition root.  Each process command wires ``bots``, ``core`` and
``runner`` together; nothing below this layer knows about the others' concrete parts."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import click
from pydantic import ValidationError

from cli.output import FORMATS, emit
from core.errors import OzError
from core.logs import configure_logging
from core.settings import Settings, get_settings


class Context:
    def __init__(self, output_format: str, api_key: str | None = None) -> None:
        self.output_format = output_format
        self.api_key = api_key
        """Whose key acts when ``--email`` is not given (``--api-key`` or ``WARP_API_KEY``)."""
        self.settings = get_settings()


pass_ctx = click.make_pass_decorator(Context)


class OzGroup(click.Group):
    """Turns an :class:`OzError` from any command into a one-line message and exit status 1."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except OzError as error:
            raise click.ClickException(f"{error.code.value}: {error.message}") from None
        except ValidationError as error:  # the OZGW_* settings (read first): say which, no traceback
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in error.errors())
            raise click.ClickException(f"invalid settings: {problems}") from None


if TYPE_CHECKING:
    from runner.context import WorkerContext


@click.group(cls=OzGroup)
@click.option(
    "--output-format", type=click.Choice(FORMATS), default="pretty", show_default=True, help="How to print results."
)
@click.option("--api-key", envvar="WARP_API_KEY", default=None, help="Act with this API key (default: WARP_API_KEY).")
@click.pass_context
def main(ctx: click.Context, output_format: str, api_key: str | None) -> None:
    """Self-hosted gateway for Oz-compatible cloud agent runs."""
    configure_logging(os.environ.get("OZGW_LOG_LEVEL", "INFO"))
    ctx.obj = Context(output_format, api_key)


@main.command()
@click.option("--email", default=None, help="Act as this person (default: the API key's owner).")
@pass_ctx
def whoami(ctx: Context, email: str | None) -> None:
    """Who the CLI acts as: the person (or cloud agent) of the API key, their team, whether admin."""
    from cli.session import acting_principal, store_session
    from core.accounts import team_by_uid
    from core.permissions import is_admin

    with store_session(ctx.settings) as session:
        who = acting_principal(session, email)
        view = {
            "kind": who.kind,
            "uid": who.uid,
            "email": who.email,
            "name": who.display_name,
            "team": team_by_uid(session, who.team_uid).name,
            "admin": is_admin(session, who),
        }
    emit(view, ctx.output_format, ("kind", "email", "team", "admin"))


# --- processes ---------------------------------------------------------------------------------


@main.command()
@click.option("--host", default=None, help="Interface to listen on (default OZGW_HOST or 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (default OZGW_PORT or 8080).")
@pass_ctx
def serve(ctx: Context, host: str | None, port: int | None) -> None:
    """Run the web process: the REST API (and later the Slack, Linear and GitHub webhooks)."""
    from aiohttp import web

    from bots.app import create_app

    settings = ctx.settings.model_copy(update={k: v for k, v in (("host", host), ("port", port)) if v is not None})
    web.run_app(create_app(settings), host=settings.host, port=settings.port, print=None, access_log=None)


def _sweeps(settings: Settings) -> tuple[list[Callable[[], object]], WorkerContext]:
    """The sweeps the worker runs at start-up and the scheduler runs periodically."""
    from datetime import timedelta

    from core import inbox, schedules, sweeps
    from runner.context import WorkerContext
    from runner.recovery import reap_containers, reap_workspaces

    ctx = WorkerContext.build(settings)
    queue = ctx.queue
    assert queue is not None  # built with one
    ctx.store.migrate()
    grace = timedelta(seconds=settings.orphan_grace_seconds)
    abandoned = timedelta(seconds=settings.abandoned_after_seconds)
    jobs: list[Callable[[], object]] = [
        lambda: sweeps.requeue_orphans(ctx.store, queue, grace=grace),
        lambda: schedules.pause_failing(ctx.store, settings.schedule_pause_after),
        lambda: sweeps.recover_abandoned(ctx.store, queue, after=abandoned, prices=settings.prices),
        lambda: reap_containers(ctx),
        lambda: reap_workspaces(ctx),
        lambda: inbox.forget_handled(ctx.store, older_than=inbox.KEEP_HANDLED),
    ]
    return jobs, ctx


@main.command()
@click.option("--burst", is_flag=True, help="Exit when the queue is empty (for tests and one-off catch-up).")
@pass_ctx
def worker(ctx: Context, burst: bool) -> None:
    """Run an RQ worker that executes queued runs; sweeps orphaned runs and containers first."""
    import runner.job  # noqa: F401 - imported once here, not again in every work horse RQ forks (~90 ms)
    from bots.schedule.sweeper import sweep_once
    from cli.rq_worker import GatewayWorker
    from runner.context import adopt
    from runner.recovery import reap_containers, reap_workspaces

    jobs, worker_ctx = _sweeps(ctx.settings)
    sweep_once(jobs)
    sweep_every = int(max(ctx.settings.sweep_interval_seconds, 1))
    adopt(worker_ctx)  # the work horses inherit it, its statements compiled, none of its connections
    queue = worker_ctx.queue
    assert queue is not None  # _sweeps built it with one
    GatewayWorker(
        [queue.queue],
        connection=queue.connection,
        maintenance_interval=sweep_every,
        worker_ttl=sweep_every + 15,  # RQ blocks on the queue for its TTL less 15 s: idle, it still sweeps
        host_sweeps=[lambda: reap_containers(worker_ctx), lambda: reap_workspaces(worker_ctx)],
    ).work(burst=burst, logging_level="INFO")


@main.command()
@pass_ctx
def scheduler(ctx: Context) -> None:
    """Fire scheduled agents, and run the periodic sweeps: re-enqueue lost jobs, recover runs of
    dead workers, remove orphan containers.  Several may run at once: each fire time starts one run."""
    from bots.schedule.sweeper import sweep_forever
    from core import schedules

    settings = ctx.settings
    jobs, worker_ctx = _sweeps(settings)

    def fire() -> object:
        return schedules.fire_due(
            worker_ctx.store,
            worker_ctx.queue,
            agent_limit=settings.agent_limit,
            pause_after=settings.schedule_pause_after,
        )

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    firing = threading.Thread(
        target=sweep_forever, args=([fire], settings.schedule_tick_seconds, stop), name="schedules", daemon=True
    )
    firing.start()
    with contextlib.suppress(KeyboardInterrupt):
        sweep_forever(jobs, settings.sweep_interval_seconds, stop)
    stop.set()
    firing.join(10)


@main.command()
@pass_ctx
def reporter(ctx: Context) -> None:
    """Follow runs and render them back where they came from (Slack threads, Linear sessions)."""
    import asyncio

    asyncio.run(_report(ctx.settings))


async def _report(settings: Settings) -> None:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import aiohttp
    from redis.asyncio import BlockingConnectionPool
    from redis.asyncio import Redis as AsyncRedis

    from bots.linear.app import build_reporter as build_linear_reporter
    from bots.linear.app import linear_configured
    from bots.slack.app import build_reporter, slack_configured
    from core.models import RunSourceType
    from core.reporting import Follower, SurfaceReporter
    from core.store import Store
    from core.vault import Vault

    store = Store(settings.effective_database_url)
    store.migrate()
    # A bounded pool: whatever the burst, the reporter holds a few connections, never one per run.
    redis = AsyncRedis(
        connection_pool=BlockingConnectionPool.from_url(
            settings.effective_redis_url, max_connections=32, timeout=10, socket_connect_timeout=1.0
        )
    )
    http = aiohttp.ClientSession()
    reporters: dict[RunSourceType, SurfaceReporter] = {}
    if slack_configured(settings):
        reporters[RunSourceType.SLACK] = build_reporter(settings, store, Vault.from_settings(settings), http)
    if linear_configured(settings):
        executor = ThreadPoolExecutor(4, thread_name_prefix="ozgw-linear")
        reporters[RunSourceType.LINEAR] = build_linear_reporter(settings, store, redis, executor)
    if not reporters:
        click.echo("no surface to report to is configured (OZGW_SLACK_*, OZGW_LINEAR_*); the reporter idles", err=True)
    follower = Follower(
        store,
        redis,
        reporters,
        interval=settings.report_interval_seconds,
        sweep_every=settings.report_sweep_seconds,
        lease_seconds=settings.report_lease_seconds,
        prefix=settings.redis_prefix,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await follower.run(stop)
    finally:
        await http.close()
        await redis.aclose()
        store.dispose()


@main.command()
@click.option("--port", type=int, default=None, help="Port for the API (default OZGW_PORT or 8080).")
@pass_ctx
def up(ctx: Context, port: int | None) -> None:
    """Run everything on one machine: store migrations, a private Redis if none is configured,
    then the web, worker, scheduler and reporter processes until interrupted."""
    from cli.services import start_private_redis
    from core.store import Store
    from core.vault import Vault

    settings = ctx.settings
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OZGW_DATA_DIR=str(settings.data_dir.resolve()))
    children: list[subprocess.Popen] = []
    if not settings.redis_url:
        redis_process, url = start_private_redis(settings.data_dir)
        children.append(redis_process)
        env["OZGW_REDIS_URL"] = url
    if port is not None:
        env["OZGW_PORT"] = str(port)
    settings.signing_key()  # generate the shared keys once, before three processes read them
    Vault.from_settings(settings)
    Store(settings.effective_database_url).migrate()
    command = [sys.executable, "-m", "cli"]
    for name in ("serve", "worker", "scheduler", "reporter"):
        children.append(subprocess.Popen([*command, name], env=env))
    api = f"http://{settings.host}:{port or settings.port}/api/v1"
    click.echo(f"oz-gateway is up: API at {api} (store {settings.effective_database_url})", err=True)
    click.echo(
        "Create a person and a key:  oz-gateway account create --email you@example.com && "
        "oz-gateway key create --email you@example.com --name laptop",
        err=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.is_set():
            if any(c.poll() is not None for c in children):
                click.echo("a gateway process exited; stopping the others", err=True)
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()


@main.command("github-action")
def github_action() -> None:
    """Run as a GitHub Actions step (reads GITHUB_EVENT_PATH; see manifests/github-action)."""
    from cli.github_action import main as action_main

    sys.exit(action_main())


def _register_commands() -> None:
    from cli import admin, artifacts, billing, credentials, identities, integrations, run_commands

    main.add_command(admin.account)
    main.add_command(admin.key)
    main.add_command(admin.environment)
    main.add_command(run_commands.run)
    main.add_command(credentials.github)
    main.add_command(credentials.secret)
    main.add_command(integrations.integration)
    main.add_command(integrations.linear)
    main.add_command(identities.identity_group)
    main.add_command(artifacts.artifact)
    main.add_command(artifacts.model)
    main.add_command(billing.schedule)
    main.add_command(billing.budget)
    main.add_command(billing.usage_command)


_register_commands()
