"""Every recorded payload is replayed by some test: a fixture nobody loads is a case nobody
checks (the Zulip rule).  Tests load fixtures by name, so the name must appear in a test."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.replay import TESTS, fixture_names


def test_every_recorded_payload_is_replayed() -> None:
    here = Path(__file__).resolve()
    sources = "\n".join(p.read_text() for p in TESTS.rglob("*.py") if p.resolve() != here)
    named = {name for name in fixture_names() if re.search(rf'"{re.escape(name)}(\.jsonl?)?"', sources)}
    never = sorted(set(fixture_names()) - named)
    assert never == [], f"recorded payloads no test replays: {never}"
