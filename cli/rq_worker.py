"""The RQ worker the ``worker`` command runs: RQ's own, its shutdown never stuck for a minute."""

from __future__ import annotations

from rq import Worker


class GatewayWorker(Worker):
    """RQ unsubscribes from its command channel *before* it stops the thread reading it.  A
    thread that reads the unsubscribe reply first loops back into redis-py's ``get_message``,
    which waits up to RQ's 60 s for a new subscription, while ``stop()`` joins it without a
    timeout: a warm shutdown (SIGTERM) then hangs for up to a minute.  Ending the thread's
    loop first makes the reply its last message."""

    def unsubscribe(self) -> None:
        if self.pubsub_thread:
            self.pubsub_thread.stop(timeout=0)  # its loop ends at its next turn; joined below
        super().unsubscribe()
