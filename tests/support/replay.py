"""Replaying recorded payloads, as Zulip's webhook tests do: :meth:`Replay.check_trigger` says a
payload starts a run asking for ``expected``; :meth:`Replay.expect_noop` that it changes
nothing — no run, nothing queued, nothing said on the surface.  Adding an event type means
adding its recorded payload and one line of a replay table.

Every fixture a test replays is named in the test's source, which is what
``tests/test_fixtures.py`` checks: a recorded payload nobody replays fails the suite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.models import Run
from core.queue import RunQueue
from core.store import Store
from tests.support.slack import all_runs
from tests.support.waiting import wait_for, wait_settled

TESTS = Path(__file__).resolve().parents[1]
FIXTURE_DIRS = (
    TESTS / "slack" / "fixtures",
    TESTS / "linear" / "fixtures",
    TESTS / "github_action" / "fixtures",
    TESTS / "credentials" / "fixtures",
    TESTS / "runner" / "fixtures",
)
"""Recorded payloads, each named ``<event>.<action>[.<variant>]`` plus its extension."""


def fixture_names() -> dict[str, Path]:
    """Every recorded payload by the name tests load it with (the file name, extension off)."""
    names = {}
    for folder in FIXTURE_DIRS:
        for path in folder.iterdir():
            if path.is_file() and path.suffix in (".json", ".jsonl"):
                names[path.name.removesuffix(path.suffix)] = path
    return names


@dataclass
class Replay:
    """One surface's deliveries against a live gateway, and what they may leave behind."""

    post: Callable[[dict], int]
    """Delivers a body the way the surface does (signed); returns the HTTP status."""
    load: Callable[[str], dict]
    """A recorded payload by name (fresh timestamps and the like filled in)."""
    store: Store
    queue: RunQueue
    said: Callable[[], list]
    """What the gateway has said on the surface so far (the fake service's write calls)."""

    def check_trigger(self, fixture: str, expected: str, body: dict | None = None) -> Run:
        """The payload starts exactly one run, queued, whose prompt carries ``expected``."""
        assert self.post(body if body is not None else self.load(fixture)) == 200
        wait_for(lambda: all_runs(self.store), what=f"the run {fixture} starts")
        wait_settled(self.store)
        [run] = all_runs(self.store)
        assert expected in run.prompt, (fixture, run.prompt[:400])
        assert self.queue.queue.count == 1
        return run

    def expect_noop(self, fixture: str, body: dict | None = None) -> None:
        """The payload is answered 200 and then changes nothing anyone could see."""
        assert self.post(body if body is not None else self.load(fixture)) == 200
        wait_settled(self.store)
        assert all_runs(self.store) == [], fixture
        assert self.queue.queue.count == 0, fixture
        assert self.said() == [], (fixture, self.said())
