"""``execute_run``: the RQ job that turns a QUEUED run into a finished one.

The claim is a compare-and-set QUEUED → PENDING in the store: a job delivered twice (the
sweeper re-enqueued it, Redis replayed it) or a run cancelled while queued is skipped.
"""

from __future__ import annotations

import structlog

from core import runs
from core.errors import ErrorCode, OzError
from core.models import Run, RunState
from runner.context import WorkerContext, worker_context

log = structlog.get_logger(__name__)


def claim(ctx: WorkerContext, run_id: str) -> Run | None:
    """QUEUED → PENDING, or ``None`` when the run is no longer waiting for us."""
    with ctx.store.session() as session:
        try:
            return runs.set_status(session, run_id, RunState.PENDING, expected={RunState.QUEUED})
        except runs.StaleState as stale:
            log.info("job.skipped", run_id=run_id, state=stale.current.value)
            return None


def execute(ctx: WorkerContext, run: Run) -> None:
    """Prepare the sandbox and run the agent.  The Docker sandbox arrives with the runner
    issue; until then a claimed run ends ERROR with a message that says so plainly."""
    raise OzError(
        ErrorCode.RESOURCE_UNAVAILABLE,
        "no sandbox executor is installed in this gateway build, so the run could not start",
    )


def execute_run(run_id: str) -> str:
    ctx = worker_context()
    structlog.contextvars.bind_contextvars(run_id=run_id)
    run = claim(ctx, run_id)
    if run is None:
        return "skipped"
    try:
        execute(ctx, run)
    except OzError as error:
        runs.record_failure(ctx.store, run_id, error)
        return error.code.value
    except Exception:
        log.exception("job.crashed", run_id=run_id)
        runs.record_failure(ctx.store, run_id, OzError(ErrorCode.INTERNAL_ERROR))
        raise
    return "done"
