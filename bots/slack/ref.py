"""Where a Slack run reports: its coordinates in ``Origin.ref``, typed.  ``core`` keeps them as
an opaque string map; only this front door gives the keys their meaning."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from core.models import Run


class SlackRef(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    team: str
    channel: str
    thread_ts: str
    status_ts: str | None = None
    """The "On it" message the reporter edits; a run without one is not reported."""
    user: str | None = None
    message_ts: str | None = None
    """The request itself (a :x: on it cancels the run)."""
    enterprise: str | None = None

    @classmethod
    def of(cls, run: Run) -> SlackRef | None:
        ref = run.origin.ref if run.origin else {}
        return cls.model_validate(ref) if {"team", "channel", "thread_ts"} <= ref.keys() else None

    def stored(self) -> dict[str, str]:
        return self.model_dump(exclude_none=True)

    def names_message(self, channel: str, ts: str) -> bool:
        """Whether ``channel``/``ts`` is this run's request, status message or thread."""
        return self.channel == channel and ts in (self.status_ts, self.message_ts, self.thread_ts)
