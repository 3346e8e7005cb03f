"""The operator's Dockerfile and the tests' locally built image carry the same pinned CLIs."""

from __future__ import annotations

import re

import docker
import pytest

from tests.agent_image import RECIPE, clis


def test_the_dockerfile_installs_the_pinned_clis_as_a_non_root_user():
    dockerfile = (RECIPE / "Dockerfile").read_text()
    assert "COPY clis.txt /tmp/clis.txt" in dockerfile
    assert re.search(r"npm install -g .*\$\(grep -v '\^#' /tmp/clis.txt\)", dockerfile)
    assert re.search(r"^USER agent$", dockerfile, re.MULTILINE)
    assert re.search(r"^WORKDIR /workspace$", dockerfile, re.MULTILINE)
    assert re.search(r"^FROM node:(2[2-9]|[3-9]\d)", dockerfile, re.MULTILINE)  # Node >= 22 (Claude Code asks it)
    assert {spec.rsplit("@", 1)[0] for spec in clis()} == {
        "@anthropic-ai/claude-code",
        "@openai/codex",
        "@google/gemini-cli",
    }


@pytest.mark.parametrize(
    ("program", "package"), [("claude", "claude-code"), ("codex", "codex"), ("gemini", "gemini-cli")]
)
def test_the_local_image_runs_the_pinned_version_as_agent(
    program: str, package: str, agent_image: str, docker_client: docker.DockerClient
):
    pinned = next(spec.rsplit("@", 1)[1] for spec in clis() if spec.rsplit("@", 1)[0].endswith("/" + package))
    out = docker_client.containers.run(
        agent_image, ["sh", "-c", f"id -un; {program} --version"], remove=True, network_mode="none"
    ).decode()
    assert out.splitlines()[0] == "agent"
    assert pinned in out
