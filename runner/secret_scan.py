"""Looking for a run's secret values in what setup left behind, before it is kept.

A snapshot (:mod:`runner.snapshots`) is shared by every later run of its environment, some
of them other people's: a setup command that wrote a token into a file (``echo $NPM_TOKEN >
~/.npmrc``) would hand that value to all of them.  So every byte a snapshot would keep is
searched for every value the run's masker knows (secrets, tokens, their encodings): the
container's changed files as the engine archives them, the workspace's files, and the raw
workspace filesystem image, which also holds what setup wrote and deleted again.

Everything is read as bytes.  The workspace is walked without following a symlink, and a file
is opened only if it is a regular file once open (``O_NOFOLLOW``, then ``fstat``).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

CHUNK = 1024 * 1024


class Finder:
    """Searches a stream of chunks for any of ``needles``, across chunk boundaries."""

    def __init__(self, needles: Iterable[bytes]) -> None:
        self.needles = sorted({n for n in needles if n}, key=len, reverse=True)
        self.overlap = max((len(n) for n in self.needles), default=1) - 1

    def first(self, chunks: Iterable[bytes]) -> bytes | None:
        """The first needle found in the concatenated ``chunks``, if any."""
        if not self.needles:
            return None
        tail = b""
        for chunk in chunks:
            window = tail + chunk
            for needle in self.needles:
                if needle in window:
                    return needle
            tail = window[-self.overlap :] if self.overlap else b""
        return None


def file_chunks(fd: int) -> Iterator[bytes]:
    while chunk := os.read(fd, CHUNK):
        yield chunk


def sparse_chunks(path: Path) -> Iterator[bytes]:
    """A sparse file's data regions only (a filesystem image is mostly holes)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        size = os.fstat(fd).st_size
        offset = 0
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
                end = os.lseek(fd, start, os.SEEK_HOLE)
            except OSError:  # no data past offset
                return
            os.lseek(fd, start, os.SEEK_SET)
            remaining = end - start
            while remaining > 0:
                chunk = os.read(fd, min(CHUNK, remaining))
                if not chunk:
                    return
                remaining -= len(chunk)
                yield chunk
            offset = end
    finally:
        os.close(fd)


def find_in_tree(finder: Finder, root: Path) -> str | None:
    """The first file (relative path) or symlink under ``root`` holding a needle, if any."""
    for directory, dirnames, filenames in os.walk(root, followlinks=False):
        for name in [*filenames, *dirnames]:
            path = Path(directory) / name
            relative = str(path.relative_to(root))
            if finder.first([os.fsencode(relative)]):
                return relative
            try:
                if path.is_symlink():
                    if finder.first([os.fsencode(os.readlink(path))]):
                        return relative
                    continue
                if name in dirnames:
                    continue
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                continue
            try:
                if stat.S_ISREG(os.fstat(fd).st_mode) and finder.first(file_chunks(fd)):
                    return relative
            finally:
                os.close(fd)
    return None
