"""The agent image for the real-CLI tests, built on this host without a registry: the recipe of
``manifests/images/agent/Dockerfile`` — Debian bookworm (from ``debootstrap``), git, Node.js,
the CLIs pinned in ``clis.txt`` from the npm registry, a non-root user ``agent`` owning
``/workspace`` — imported with ``docker import``.

The image is tagged by a hash of that recipe (the pinned CLIs, this file, the Node.js it
copies), so it is built once per recipe and CI rebuilds only when the recipe changes.
``scripts/test`` builds it before the tests start (it takes a few minutes the first time);
``python -m tests.agent_image`` does the same by hand.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import docker
from docker.errors import ImageNotFound

RECIPE = Path(__file__).resolve().parents[1] / "manifests" / "images" / "agent"
REPOSITORY = "oz-test/agent"
SUITE = "bookworm"
MIRROR = os.environ.get("OZ_DEBIAN_MIRROR", "http://deb.debian.org/debian")
PACKAGES = ["git", "ca-certificates", "ripgrep", "procps", "less", "python3-venv"]
"""What agent environments usually have (``python3-venv``: a project's virtualenv, as in ``bench/warm_start.py``)."""
AGENT_UID = 1001
PRUNE = ["var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info"]


def clis() -> list[str]:
    lines = (RECIPE / "clis.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _node() -> Path:
    located = shutil.which("node")
    if located is None:
        raise RuntimeError("Node.js is needed to build the agent image (apt-get install nodejs)")
    return Path(located).resolve()


def tag() -> str:
    digest = hashlib.sha256()
    digest.update("\n".join([SUITE, *PACKAGES, *clis()]).encode())
    digest.update(Path(__file__).read_bytes())
    digest.update(subprocess.run([str(_node()), "--version"], capture_output=True, check=True).stdout)
    return f"{REPOSITORY}:{digest.hexdigest()[:12]}"


def _run(*argv: str, **kwargs: object) -> None:
    subprocess.run(list(argv), check=True, **kwargs)  # type: ignore[call-overload]


def _build_rootfs(root: Path) -> None:
    _run(
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(PACKAGES)}",
        SUITE,
        str(root),
        MIRROR,
        stdout=subprocess.DEVNULL,
    )
    for path in PRUNE:
        shutil.rmtree(root / path, ignore_errors=True)
    (root / "usr" / "local" / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(_node(), root / "usr" / "local" / "bin" / "node")
    _run(
        "npm",
        "install",
        "--global",
        "--prefix",
        str(root / "usr" / "local"),
        "--no-audit",
        "--no-fund",
        "--allow-scripts=@anthropic-ai/claude-code",
        *clis(),
        stdout=subprocess.DEVNULL,
    )
    with open(root / "etc" / "passwd", "a") as passwd:
        passwd.write(f"agent:x:{AGENT_UID}:{AGENT_UID}::/home/agent:/bin/bash\n")
    with open(root / "etc" / "group", "a") as group:
        group.write(f"agent:x:{AGENT_UID}:\n")
    with open(root / "etc" / "shadow", "a") as shadow:
        shadow.write("agent:*:20000:0:99999:7:::\n")
    for directory in (root / "home" / "agent", root / "workspace"):
        directory.mkdir(parents=True, exist_ok=True)
        os.chown(directory, AGENT_UID, AGENT_UID)


def agent_image(client: docker.DockerClient) -> str:
    """The image's tag, building and importing it first if this host does not have it."""
    wanted = tag()
    try:
        client.images.get(wanted)
        return wanted
    except ImageNotFound:
        pass
    with tempfile.TemporaryDirectory(prefix="oz-agent-image-", dir="/var/tmp") as scratch:
        root = Path(scratch) / "rootfs"
        _build_rootfs(root)
        archive = Path(scratch) / "rootfs.tar"
        _run("tar", "--numeric-owner", "-C", str(root), "-cf", str(archive), ".")
        repository, version = wanted.split(":")
        client.api.import_image_from_file(
            str(archive),
            repository=repository,
            tag=version,
            changes=[
                "ENV PATH=/usr/local/bin:/usr/bin:/bin",
                "ENV DISABLE_AUTOUPDATER=1",
                "ENV CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
                "USER agent",
                "WORKDIR /workspace",
                'CMD ["/bin/bash"]',
            ],
        )
    client.images.get(wanted)  # the import really produced it
    return wanted


if __name__ == "__main__":
    print(agent_image(docker.from_env(timeout=600)), file=sys.stderr)
