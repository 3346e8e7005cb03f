"""A pytest plugin (see ``tests/conftest.py``) shared by the boundary tests of the worker and
of the Action's local mode: the trap a prompt-injected agent (``tests/agents/attack.sh``) is
pointed at, and what must survive it."""

from __future__ import annotations

from pathlib import Path

import pytest

AGENTS = Path(__file__).resolve().parent / "agents"
LEGIT_README = b"# api\r\nThe typo is fixed.\n\tAnd a tab.\n"
LEGIT_NOTES = b"notes \x01\x02 end\n"
LEGIT_PROC = b"processed by nobody\n"


@pytest.fixture
def trap(tmp_path: Path) -> tuple[Path, Path]:
    """The marker directory (must stay empty) and a victim directory (must survive cleanup)."""
    mark, victim = tmp_path / "markers", tmp_path / "victim"
    mark.mkdir()
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    return mark, victim


def prompt_for(trap: tuple[Path, Path]) -> str:
    return f"MARK={trap[0]} VICTIM={trap[1]}\nFix the README typo"


def assert_untouched(trap: tuple[Path, Path]) -> None:
    assert sorted(p.name for p in trap[0].iterdir()) == [], "something planted ran on the host"
    assert (trap[1] / "precious.txt").read_text() == "keep me"
