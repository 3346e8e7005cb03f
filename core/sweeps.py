"""Sweeps that keep accepted runs moving when a part failed: Redis lost a job, or the
worker executing a run died (its heartbeat stopped).  Each is idempotent and safe to run
from several processes at once: every state change is a compare-and-set."""

from __future__ import annotations

from datetime import timedelta

import structlog
from redis.exceptions import RedisError
from sqlalchemy import and_, or_, select

from core import runs
from core.errors import ErrorCode, OzError
from core.models import RunState
from core.models.wire import EXECUTING_STATES
from core.prices import PriceTable
from core.queue import RunQueue
from core.store import Store, utcnow
from core.store.tables import RunRow

log = structlog.get_logger(__name__)
S = RunState
ORPHAN_GRACE = timedelta(seconds=5)
"""A QUEUED run younger than this may still be on its way into Redis from ``create``."""


def requeue_orphans(store: Store, queue: RunQueue, *, grace: timedelta = ORPHAN_GRACE) -> list[str]:
    """Enqueue every QUEUED run that has no live job; returns the run ids it enqueued."""
    cutoff = utcnow() - grace
    with store.session() as session:
        run_ids = list(
            session.scalars(
                select(RunRow.run_id)
                .where(RunRow.state == "QUEUED", RunRow.updated_at <= cutoff)
                .order_by(RunRow.created_at)
            )
        )
    enqueued: list[str] = []
    for run_id in run_ids:
        try:
            if queue.has_live_job(run_id):
                continue
        except RedisError:
            log.warning("queue.sweep_stopped", reason="redis unreachable", remaining=len(run_ids) - len(enqueued))
            break
        if queue.enqueue(run_id):
            enqueued.append(run_id)
    if enqueued:
        log.info("queue.requeued_orphans", count=len(enqueued), run_ids=enqueued)
    return enqueued


def recover_abandoned(
    store: Store, queue: RunQueue, *, after: timedelta, prices: PriceTable | None = None
) -> tuple[list[str], list[str]]:
    """Runs whose executing worker stopped heart-beating for ``after``.

    One whose agent never started goes back to the queue; one whose agent was running ends
    ERROR ``agent_process_failed`` (its work in the dead container is lost), its container time
    costed by ``prices`` up to now.  Returns (requeued, failed) run ids.
    """
    cutoff = utcnow() - after
    with store.reader() as session:
        stale = session.execute(
            select(RunRow.run_id, RunRow.state, RunRow.started_at).where(
                RunRow.state.in_([s.value for s in EXECUTING_STATES]),
                or_(RunRow.heartbeat_at < cutoff, and_(RunRow.heartbeat_at.is_(None), RunRow.updated_at < cutoff)),
            )
        ).all()
    requeued, failed = [], []
    for run_id, state, started_at in stale:
        if started_at is None:
            if runs.requeue(store, queue, run_id, expected={S(state)}, heartbeat_at=None, prices=prices) is not None:
                requeued.append(run_id)
        else:
            error = OzError(ErrorCode.AGENT_PROCESS_FAILED, "the worker executing this run stopped unexpectedly")
            if runs.record_failure(store, queue, run_id, error, prices) is not None:
                failed.append(run_id)
    if requeued or failed:
        log.warning("sweeps.abandoned_runs", requeued=requeued, failed=failed)
    return requeued, failed


def executing_runs(store: Store, *, fresh_within: timedelta) -> dict[str, str]:
    """Runs being executed by a live worker (heartbeat fresh), each with the host executing it
    (``""`` if not recorded): their containers and workspaces there must stay."""
    cutoff = utcnow() - fresh_within
    with store.reader() as session:
        rows = session.execute(
            select(RunRow.run_id, RunRow.worker_host).where(
                RunRow.state.in_([s.value for s in EXECUTING_STATES]), RunRow.heartbeat_at >= cutoff
            )
        )
        return {run_id: host for run_id, host in rows}
