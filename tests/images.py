"""Test images built on this host (no registry is reachable): a busybox root filesystem
imported with ``docker import``, carrying the scripted agents from ``tests/agents``."""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
from pathlib import Path

import docker
from docker.errors import ImageNotFound

AGENTS = Path(__file__).parent / "agents"
BUSYBOX = Path("/bin/busybox")

QUEUED_ONLY_IMAGE = "oz-test/queued-only:never-started"
"""The image of environments whose runs a test only queues: no engine ever pulls or starts it."""


def _tag() -> str:
    digest = hashlib.sha256(BUSYBOX.read_bytes())
    for script in sorted(AGENTS.glob("*.sh")):
        digest.update(script.name.encode() + script.read_bytes())
    return f"oz-test/busybox:{digest.hexdigest()[:12]}"


def _rootfs() -> bytes:
    applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True).stdout.split()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:

        def add_dir(name: str, mode: int = 0o755) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)

        def add_file(name: str, data: bytes, mode: int = 0o644) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))

        for directory in ("bin", "etc", "tmp", "root", "opt", "opt/agents", "workspace", "proc", "sys", "dev"):
            add_dir(directory, 0o1777 if directory == "tmp" else 0o755)
        add_file("bin/busybox", BUSYBOX.read_bytes(), 0o755)
        for applet in applets:
            if applet != "busybox":
                link = tarfile.TarInfo(f"bin/{applet}")
                link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(link)
        add_file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
        add_file("etc/group", b"root:x:0:\nnogroup:x:65534:\n")
        for script in AGENTS.glob("*.sh"):
            add_file(f"opt/agents/{script.name}", script.read_bytes(), 0o755)
    return buffer.getvalue()


def busybox_image(client: docker.DockerClient) -> str:
    """The image's tag, importing it first if this host does not have this version yet."""
    tag = _tag()
    try:
        client.images.get(tag)
    except ImageNotFound:
        repository, version = tag.split(":")
        client.api.import_image_from_data(
            _rootfs(), repository=repository, tag=version, changes=['CMD ["/bin/sh"]', "ENV PATH=/bin"]
        )
    return tag
