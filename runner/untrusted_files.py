"""Reading files the agent (or code it planted) could have written.

Every path component is opened relative to its parent's descriptor with ``O_NOFOLLOW``, so a
symlink anywhere — the file, ``.oz``, ``artifacts``, a directory in between — is refused rather
than followed; only regular files are read (a FIFO or device is skipped without blocking), and
never more than a cap.  Checking a path first and opening it afterwards would leave a window
in which a process still running in the container swaps a directory for a symlink; working
from descriptors closes it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
CHUNK = 1 << 20


class Refused(Exception):
    """A path component was a symlink (or not what it had to be)."""


class Missing(Refused):
    """There is nothing by that name."""


@dataclass(frozen=True)
class FoundFile:
    path: str
    """Relative to the directory walked, ``/``-separated."""
    size: int


def _open_at(dir_fd: int, name: str, flags: int) -> int:
    """``name`` opened relative to ``dir_fd``; a symlink (``ELOOP``) or anything else amiss is Refused."""
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        raise Missing(name) from None
    except OSError as exc:
        raise Refused(f"{name}: {exc.strerror}") from None


@contextlib.contextmanager
def open_dir(root: Path, *parts: str) -> Iterator[int]:
    """A descriptor for ``root/parts…``; ``root`` is the host's own, each part must not be a symlink."""
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts:
            child = _open_at(fd, part, _DIR_FLAGS)
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def _open_regular(dir_fd: int, name: str) -> Iterator[tuple[int, int]]:
    fd = _open_at(dir_fd, name, _FILE_FLAGS)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Refused(f"{name}: not a regular file")
        yield fd, info.st_size
    finally:
        os.close(fd)


def read_file(dir_fd: int, name: str, limit: int) -> bytes:
    """The whole file, or :class:`Refused` when it is a symlink, not regular, or over ``limit`` bytes."""
    with _open_regular(dir_fd, name) as (fd, size):
        if size > limit:
            raise Refused(f"{name}: {size} bytes is over the limit of {limit}")
        data = os.read(fd, limit + 1)
        while len(data) <= limit:
            more = os.read(fd, limit + 1 - len(data))
            if not more:
                break
            data += more
    if len(data) > limit:  # it grew while we read it
        raise Refused(f"{name}: over the limit of {limit} bytes")
    return data


def copy_file(dir_fd: int, name: str, destination: Path, limit: int) -> None:
    """Copy the file into ``destination`` (a path of the host's own), refusing it over ``limit`` bytes."""
    with _open_regular(dir_fd, name) as (fd, size):
        if size > limit:
            raise Refused(f"{name}: {size} bytes is over the limit of {limit}")
        copied = 0
        with open(destination, "wb") as out:
            while chunk := os.read(fd, CHUNK):
                copied += len(chunk)
                if copied > limit:
                    raise Refused(f"{name}: over the limit of {limit} bytes")
                out.write(chunk)


def walk(dir_fd: int, prefix: str = "") -> Iterator[tuple[int, str, FoundFile]]:
    """Regular files below ``dir_fd`` in name order, as (their directory's descriptor, name,
    found); symlinks and special files are skipped, subdirectories entered without following."""
    with os.scandir(dir_fd) as scan:
        entries = sorted(scan, key=lambda e: e.name)
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            try:
                child = os.open(entry.name, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError:
                continue  # swapped for a symlink (or removed) since the listing
            try:
                yield from walk(child, f"{prefix}{entry.name}/")
            finally:
                os.close(child)
        elif entry.is_file(follow_symlinks=False):
            yield dir_fd, entry.name, FoundFile(prefix + entry.name, entry.stat(follow_symlinks=False).st_size)
