"""Where a Linear run reports: its coordinates in ``Origin.ref``, typed.  ``core`` keeps them
as an opaque string map; only this front door gives the keys their meaning."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from core.models import Run


class LinearRef(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    issue: str
    team: str | None = None
    delegated: str = ""
    """``"1"`` when the issue was delegated (or assigned) to the app rather than a mention."""
    session: str | None = None
    """The agent session its steps and end go to; without one, comments on the issue."""
    org: str | None = None
    """The Linear organization: its install's token answers."""

    @classmethod
    def of(cls, run: Run) -> LinearRef | None:
        ref = run.origin.ref if run.origin else {}
        return cls.model_validate(ref) if "issue" in ref else None

    def stored(self) -> dict[str, str]:
        return self.model_dump(exclude_none=True)
