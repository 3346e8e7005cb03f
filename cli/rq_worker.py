"""The RQ worker the ``worker`` command runs: RQ's own, its shutdown never stuck for a minute,
its host's leftovers swept between jobs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rq import Worker

from bots.schedule.sweeper import Sweep, sweep_once


class GatewayWorker(Worker):
    """RQ unsubscribes from its command channel *before* it stops the thread reading it.  A
    thread that reads the unsubscribe reply first loops back into redis-py's ``get_message``,
    which waits up to RQ's 60 s for a new subscription, while ``stop()`` joins it without a
    timeout: a warm shutdown (SIGTERM) then hangs for up to a minute.  Ending the thread's
    loop first makes the reply its last message.

    Between jobs, at RQ's maintenance interval, it also runs ``host_sweeps``: the removal of
    this host's orphaned containers and workspaces.  Only a process on the host can see them,
    and the scheduler runs on one host; without this, a host whose worker outlived a crashed
    work horse would keep the horse's container until its worker restarted."""

    def __init__(self, *args: Any, host_sweeps: Sequence[Sweep] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.host_sweeps = host_sweeps

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()
        sweep_once(self.host_sweeps)

    def unsubscribe(self) -> None:
        if self.pubsub_thread:
            self.pubsub_thread.stop(timeout=0)  # its loop ends at its next turn; joined below
        super().unsubscribe()
