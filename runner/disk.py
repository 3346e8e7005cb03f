"""A run's workspace on a filesystem of its own, so an agent that fills its disk fills only
that: a sparse ext4 image of ``OZGW_WORKSPACE_SIZE`` bytes (it costs only what is written),
loop-mounted ``nosuid,nodev`` at ``root/disk`` before anything is cloned into it.  Past the
size the agent's writes fail with "No space left on device" — the kernel's limit, not a
check the agent could race — and the host's disk, the pristine clones beside it and other
runs are untouched.  Unmounted before the run's directory is removed, by the run or a sweep.

Mounting needs root (``CAP_SYS_ADMIN`` and the loop devices); ``OZGW_WORKSPACE_SIZE=0`` keeps
workspaces on the work directory's own filesystem.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import structlog

from core.errors import ErrorCode, OzError

log = structlog.get_logger(__name__)

MOUNTPOINT = "disk"
IMAGE = "disk.img"
TIMEOUT = 60


def mount_disk(root: Path, size: int, start: Path | None = None) -> Path:
    """``root/disk``: an empty filesystem of ``size`` bytes when ``size`` is set, else a plain
    directory — or a copy of ``start`` (a snapshot's disk: its image when ``size`` is set, its
    directory otherwise)."""
    mountpoint = root / MOUNTPOINT
    if not size:
        if start is None:
            mountpoint.mkdir()
        else:
            copy(start, mountpoint)
        return mountpoint
    mountpoint.mkdir()
    image = root / IMAGE
    if start is None:
        with open(image, "wb") as handle:
            handle.truncate(size)
        _run(["mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal", "-E", "lazy_itable_init=1", str(image)])
    else:
        copy(start, image)
    _run(["mount", "-o", "loop,nosuid,nodev,noatime", str(image), str(mountpoint)])
    return mountpoint


def copy(source: Path, target: Path) -> None:
    """A copy with owners, modes and links as they are (never followed), sharing blocks where
    the filesystem can (reflinks) and leaving holes holes."""
    _run(["cp", "-a", "--reflink=auto", "--sparse=always", "--no-target-directory", str(source), str(target)])


def check_image(image: Path) -> None:
    """A copied filesystem image made consistent (it was copied while mounted, with its
    writers paused): ``e2fsck`` fixes what it may and marks it clean."""
    result = subprocess.run(["e2fsck", "-f", "-p", str(image)], capture_output=True, text=True, timeout=TIMEOUT)
    if result.returncode >= 4:  # 1 and 2: errors corrected
        raise _unavailable(f"e2fsck: {(result.stderr or result.stdout).strip()[-500:]}")


def unmount_disk(root: Path) -> None:
    """Unmount every filesystem mounted under ``root`` (its disk, a ready disk it took from a
    snapshot), deepest first, lazily if a process still holds one."""
    for mountpoint in mounts_under(root):
        if subprocess.run(["umount", str(mountpoint)], capture_output=True, timeout=TIMEOUT).returncode != 0:
            subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, timeout=TIMEOUT)
        log.info("disk.unmounted", root=str(root), mountpoint=str(mountpoint))


def mounts_under(root: Path) -> list[Path]:
    """The mount points strictly under ``root``, as this process's mount table lists them."""
    prefix = str(root.resolve()) + "/"
    try:
        with open("/proc/self/mountinfo") as table:
            points = [_unescape(line.split()[4]) for line in table]
    except OSError:
        return [root / MOUNTPOINT] if os.path.ismount(root / MOUNTPOINT) else []
    return sorted((Path(p) for p in points if p.startswith(prefix)), key=lambda p: len(p.parts), reverse=True)


def _unescape(field: str) -> str:
    """``/proc/self/mountinfo`` writes space, tab, newline and backslash as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _run(argv: list[str]) -> None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _unavailable(str(exc)) from None
    if result.returncode != 0:
        raise _unavailable((result.stderr or result.stdout).strip()[-500:])


def _unavailable(detail: str) -> OzError:
    return OzError(
        ErrorCode.RESOURCE_UNAVAILABLE,
        f"{detail}; the worker mounts each workspace as a filesystem of its own (root and loop devices "
        "needed): run it as root, or set OZGW_WORKSPACE_SIZE=0 to keep workspaces without a size limit",
        title="The run's workspace could not be created",
    )
