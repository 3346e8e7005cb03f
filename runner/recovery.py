"""The runner's part of the sweeps: remove containers no live worker is using (a worker
killed with ``kill -9`` cannot remove its own)."""

from __future__ import annotations

from datetime import timedelta

from core.sweeps import executing_run_ids
from runner.context import WorkerContext
from runner.sandbox import remove_containers


def reap_containers(ctx: WorkerContext) -> list[str]:
    live = executing_run_ids(ctx.store, fresh_within=timedelta(seconds=ctx.settings.abandoned_after_seconds))
    return remove_containers(ctx.docker, ctx.settings.effective_gateway_id, keep=lambda run_id: run_id in live)
