"""GitHub Actions test helpers: the recorded event payloads."""

from __future__ import annotations

import json
from pathlib import Path

FIXTURES = Path(__file__).parents[1] / "github_action" / "fixtures"


REPO = "Codertocat/Hello-World"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())
