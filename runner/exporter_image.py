"""The exporter's image: the host's own ``git`` and ``sh`` and the shared libraries they load,
imported into the Docker engine as a root filesystem of their own.

Why not the environment's image: it may have no git (``debian:12``, the default, has none),
and its contents are the operator's choice.  Why not the host: the agent's repository is
untrusted input to git (hooks, filters, ``core.fsmonitor``), so git reading it must run in a
sandbox.  This image has nothing in it but those two programs, is built locally (no
registry), and is tagged by a hash of its contents, so it is rebuilt only when the host's git
changes.  An operator whose Docker engine is not on a Linux host like the gateway's (another
architecture, a remote engine) names an image with git and ``/bin/sh`` in
``OZGW_EXPORT_IMAGE`` instead.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import subprocess
import tarfile
import threading
from pathlib import Path

import docker
from docker.errors import ImageNotFound

from core.errors import ErrorCode, OzError

REPOSITORY = "oz-gateway/exporter"
TOOLS = ("git", "sh")
_LDD_PATH = re.compile(r"(/\S+)")
_lock = threading.Lock()
_built: dict[str, str] = {}
"""Tag of the image built from this host's tools, per Docker engine, once per process."""


def _tool_paths() -> dict[str, Path]:
    """Where the image puts each tool (``/usr/bin/git``, ``/bin/sh``), and the host file it comes from."""
    found = {}
    for name in TOOLS:
        located = shutil.which(name, path="/usr/bin:/bin")
        if located is None:
            raise OzError(
                ErrorCode.RESOURCE_UNAVAILABLE,
                f"`{name}` is not installed on the worker host; install it or set OZGW_EXPORT_IMAGE",
            )
        found[f"/usr/bin/{name}" if name == "git" else "/bin/sh"] = Path(located).resolve()
    return found


def _libraries(binary: Path) -> set[str]:
    """The absolute paths of the shared objects ``binary`` loads, the dynamic loader included."""
    listing = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, timeout=30)
    if listing.returncode != 0:
        return set()  # a static binary: nothing to add
    paths = set()
    for line in listing.stdout.splitlines():
        if "=>" in line:
            line = line.split("=>", 1)[1]
        match = _LDD_PATH.search(line)
        if match:
            paths.add(match.group(1))
    return paths


def _contents() -> dict[str, bytes]:
    """Path in the image → file contents (symlinks on the host are resolved into plain files)."""
    files: dict[str, bytes] = {}
    for target, source in _tool_paths().items():
        files[target] = source.read_bytes()
        for library in _libraries(source):
            files[library] = Path(library).resolve().read_bytes()
    return files


def _rootfs(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        directories = {"tmp", "workspace", "export", "dev", "proc", "sys", "etc"}
        for path in files:
            parts = path.strip("/").split("/")[:-1]
            directories.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        for directory in sorted(directories):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(path.strip("/"))
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def exporter_image(client: docker.DockerClient) -> str:
    """The tag of the exporter image built from this host's tools, importing it if needed."""
    key = client.api.base_url
    with _lock:
        if key in _built:
            return _built[key]
        files = _contents()
        digest = hashlib.sha256()
        for path, data in sorted(files.items()):
            digest.update(path.encode() + b"\0" + hashlib.sha256(data).digest())
        tag = f"{REPOSITORY}:{digest.hexdigest()[:16]}"
        try:
            client.images.get(tag)
        except ImageNotFound:
            library_dirs = sorted({str(Path(p).parent) for p in files if ".so" in p})
            repository, version = tag.split(":")
            client.api.import_image_from_data(
                _rootfs(files),
                repository=repository,
                tag=version,
                changes=["ENV PATH=/usr/bin:/bin", f"ENV LD_LIBRARY_PATH={':'.join(library_dirs)}"],
            )
        _built[key] = tag
        return tag
