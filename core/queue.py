"""The run queue: one RQ job per run, job id = run id.

Redis holds the queue, never the only copy of a run: a run is committed to the store
before it is enqueued, and ``core.sweeps.requeue_orphans`` re-enqueues any QUEUED run whose job
is missing (Redis was down at create time, or lost its data).  ``runner.job.execute_run``
claims a run with a compare-and-set, so a job delivered twice executes once.
"""

from __future__ import annotations

import redis
import structlog
from redis.exceptions import RedisError
from rq import Queue
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus

from core import events
from core.settings import Settings, redis_prefix

log = structlog.get_logger(__name__)

EXECUTE_RUN = "runner.job.execute_run"
_LIVE_STATUSES = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}


def connect(url: str) -> redis.Redis:
    """A Redis client that fails fast: an outage must not hold an API request for long."""
    return redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=5.0, health_check_interval=30)


class RunQueue:
    """The run queue and, on the same Redis, the announcements of what happened to runs: the
    two always travel together (a state change that re-queues a run also announces it)."""

    def __init__(self, connection: redis.Redis, name: str = "oz-runs", job_timeout: int = 3600) -> None:
        self.connection = connection
        self.queue = Queue(name, connection=connection)
        self.job_timeout = job_timeout
        self.prefix = redis_prefix(name)

    def announce(self, run_id: str, state: str) -> None:
        """Tell reporters and live streams the run changed state (they re-read the store)."""
        events.announce(self.connection, self.prefix, run_id, state)

    def publish(self, run_id: str, stored: list[events.RunEvent]) -> None:
        events.publish(self.connection, self.prefix, run_id, stored)

    @classmethod
    def from_settings(cls, settings: Settings) -> RunQueue:
        return cls(connect(settings.effective_redis_url), settings.queue_name, settings.max_runtime_seconds)

    def enqueue(self, run_id: str) -> bool:
        """Enqueue the run's job in one Redis round trip (RQ's own steps, pipelined); False
        (logged, not raised) when Redis cannot be reached."""
        try:
            with self.connection.pipeline() as pipe:
                self.queue.enqueue_call(
                    EXECUTE_RUN,
                    args=(run_id,),
                    job_id=run_id,
                    timeout=self.job_timeout + 120,  # the runner enforces the run's own limit first
                    result_ttl=24 * 3600,
                    failure_ttl=7 * 24 * 3600,
                    description=f"run {run_id}",
                    pipeline=pipe,
                )
                pipe.execute()
        except RedisError as exc:
            log.warning("queue.enqueue_deferred", run_id=run_id, reason=type(exc).__name__)
            return False
        return True

    def has_live_job(self, run_id: str) -> bool:
        try:
            status = Job.fetch(run_id, connection=self.connection).get_status(refresh=False)
        except NoSuchJobError:
            return False
        return status in _LIVE_STATUSES

    def cancel(self, run_id: str) -> None:
        """Drop a waiting job; best effort, the store already says CANCELLED.

        A started job is left alone: its supervisor sees the CANCELLED state within a tick and
        stops the container, and the job cleans up.  RQ's stop command would SIGKILL the work
        horse, leaving the container and the workspace (a private checkout) behind."""
        try:
            job = Job.fetch(run_id, connection=self.connection)
            if job.get_status(refresh=False) in _LIVE_STATUSES - {JobStatus.STARTED}:
                job.cancel()
        except (NoSuchJobError, InvalidJobOperation):
            return
        except RedisError as exc:
            log.warning("queue.cancel_failed", run_id=run_id, reason=type(exc).__name__)

    def ping(self) -> bool:
        try:
            return bool(self.connection.ping())
        except RedisError:
            return False
