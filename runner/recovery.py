"""The runner's part of the sweeps: remove this host's containers and workspaces that no live
worker on this host is using (a worker killed with ``kill -9``, or a whole host that went down,
cannot remove its own; no other host can see them)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import structlog

from core.sweeps import executing_runs
from runner.context import WorkerContext
from runner.workspace import made_by, remove_run_directory

log = structlog.get_logger(__name__)
_RUN_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _in_use(ctx: WorkerContext) -> Callable[[str, str], bool]:
    """Whether what ``host`` made for ``run_id`` is in use: a live worker on that host executes
    the run.  A host that died mid-run left a container and a workspace named by the run; once
    the sweep gave the run to another host it is live again — but not *there*, and the dead
    host, back up, must still remove them.  Which host made each thing is recorded by the thing
    (a container label, a file in the run's directory), not taken from this worker's name: two
    workers sharing one engine under different names then never remove each other's runs.
    Things made before hosts were recorded (``""``) stay while their run is live anywhere."""
    live = executing_runs(ctx.store, fresh_within=timedelta(seconds=ctx.settings.abandoned_after_seconds))

    def in_use(run_id: str, host: str) -> bool:
        return run_id in live and (not host or not live[run_id] or live[run_id] == host)

    return in_use


def reap_containers(ctx: WorkerContext) -> list[str]:
    return ctx.backend.remove_orphans(ctx.settings.effective_gateway_id, keep=_in_use(ctx))


def reap_workspaces(ctx: WorkerContext) -> list[str]:
    """Remove this host's run directories that are not in use (:func:`_in_use`); returns their run ids.

    Only names that are run ids are touched (the directory may be shared with other things),
    its filesystem is unmounted first, and removal never follows a symlink
    (:func:`runner.workspace.remove_run_directory`)."""
    base = ctx.settings.effective_work_dir
    if not base.is_dir():
        return []
    in_use = _in_use(ctx)
    removed = []
    for entry in base.iterdir():
        if _RUN_ID.match(entry.name) and not entry.is_symlink() and not in_use(entry.name, made_by(entry)):
            remove_run_directory(entry)
            removed.append(entry.name)
    if removed:
        log.info("workspace.orphans_removed", run_ids=removed)
    return removed
