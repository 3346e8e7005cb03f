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
import subprocess
from pathlib import Path

import structlog

from core.errors import ErrorCode, OzError

log = structlog.get_logger(__name__)

MOUNTPOINT = "disk"
IMAGE = "disk.img"
TIMEOUT = 60


def mount_disk(root: Path, size: int) -> Path:
    """``root/disk``: an empty filesystem of ``size`` bytes when ``size`` is set, else a plain
    directory."""
    mountpoint = root / MOUNTPOINT
    mountpoint.mkdir()
    if not size:
        return mountpoint
    image = root / IMAGE
    with open(image, "wb") as handle:
        handle.truncate(size)
    _run(["mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal", "-E", "lazy_itable_init=1", str(image)])
    _run(["mount", "-o", "loop,nosuid,nodev,noatime", str(image), str(mountpoint)])
    return mountpoint


def unmount_disk(root: Path) -> None:
    """Unmount ``root/disk`` if it is mounted (lazily if a process still holds it)."""
    mountpoint = root / MOUNTPOINT
    if not os.path.ismount(mountpoint):
        return
    if subprocess.run(["umount", str(mountpoint)], capture_output=True, timeout=TIMEOUT).returncode != 0:
        subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, timeout=TIMEOUT)
    log.info("disk.unmounted", root=str(root))


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
