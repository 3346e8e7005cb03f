"""The runner's part of the sweeps: remove containers and workspaces no live worker is using (a
worker killed with ``kill -9`` cannot remove its own)."""

from __future__ import annotations

import re
from datetime import timedelta

import structlog

from core.sweeps import executing_run_ids
from runner.context import WorkerContext
from runner.workspace import remove_run_directory

log = structlog.get_logger(__name__)
_RUN_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _live(ctx: WorkerContext) -> set[str]:
    return executing_run_ids(ctx.store, fresh_within=timedelta(seconds=ctx.settings.abandoned_after_seconds))


def reap_containers(ctx: WorkerContext) -> list[str]:
    live = _live(ctx)
    return ctx.backend.remove_orphans(ctx.settings.effective_gateway_id, keep=lambda run_id: run_id in live)


def reap_workspaces(ctx: WorkerContext) -> list[str]:
    """Remove this host's run directories whose run no live worker executes; returns their run ids.

    Only names that are run ids are touched (the directory may be shared with other things),
    its filesystem is unmounted first, and removal never follows a symlink
    (:func:`runner.workspace.remove_run_directory`)."""
    base = ctx.settings.effective_work_dir
    if not base.is_dir():
        return []
    live = _live(ctx)
    removed = []
    for entry in base.iterdir():
        if _RUN_ID.match(entry.name) and entry.name not in live and not entry.is_symlink():
            remove_run_directory(entry)
            removed.append(entry.name)
    if removed:
        log.info("workspace.orphans_removed", run_ids=removed)
    return removed
