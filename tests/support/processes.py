"""The process tree as ``/proc`` has it: what a test must kill or measure below a process (RQ's
work horse calls ``setsid`` and a container's processes sit below its shim, so a process group
misses them)."""

from __future__ import annotations

import contextlib
from pathlib import Path


def descendants(*pids: int) -> set[int]:
    """Every process below ``pids`` (not ``pids`` themselves)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = list(pids)
    while frontier:
        current = frontier.pop()
        children = [p for p, parent in parents.items() if parent == current and p not in found]
        found.update(children)
        frontier += children
    return found
