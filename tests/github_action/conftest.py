"""The Action's world: a repo with an issue on the fake GitHub, a bare remote to clone, a
GITHUB_TOKEN, and a helper that runs the step as GitHub would (a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes.github import FakeGitHub
from tests.runner_support import Person, Remotes
from tests.support.github_action import FIXTURES, REPO, fixture  # noqa: F401


@pytest.fixture
def alice(runner_alice: Person) -> Person:
    return runner_alice


@dataclass
class Step:
    code: int
    stdout: str
    outputs: dict[str, str]
    summary: str


@pytest.fixture
def action_repo(github: FakeGitHub, remotes: Remotes) -> str:
    """The fixture's repository and issue #1, with one earlier comment; returns the GITHUB_TOKEN."""
    remotes.create("Codertocat", "Hello-World")
    github.add_repo(
        "Codertocat", "Hello-World", collaborators={"Codertocat": "write", "actions-bot": "write"}, installation_id=55
    )
    issue = fixture("issue_comment.created")["issue"]
    github.add_issue(REPO, issue, comments=[{"user": {"login": "octocat"}, "body": "I see it on line 3 too."}])
    return github.add_user("actions-bot")


@pytest.fixture
def run_step(tmp_path: Path, github: FakeGitHub) -> Callable[..., Step]:
    def run(event_name: str, payload: dict, env: dict[str, str]) -> Step:
        event_path = tmp_path / f"event-{len(list(tmp_path.glob('event-*')))}.json"
        event_path.write_text(json.dumps(payload))
        outputs, summary = tmp_path / "outputs", tmp_path / "summary.md"
        outputs.write_text("")
        summary.write_text("")
        base = {k: v for k, v in os.environ.items() if not k.startswith(("OZGW_", "OZ_", "GITHUB_"))}
        base.update(
            GITHUB_EVENT_NAME=event_name,
            GITHUB_EVENT_PATH=str(event_path),
            GITHUB_REPOSITORY=REPO,
            GITHUB_API_URL=github.url,
            GITHUB_SERVER_URL="https://github.test",
            GITHUB_RUN_ID="4242",
            GITHUB_RUN_ATTEMPT="1",
            GITHUB_OUTPUT=str(outputs),
            GITHUB_STEP_SUMMARY=str(summary),
            OZ_POLL_SECONDS="0.3",
            **env,
        )
        result = subprocess.run(
            [sys.executable, "-m", "cli", "github-action"],
            env=base,
            capture_output=True,
            text=True,
            timeout=180,
            cwd=Path(__file__).resolve().parents[2],
        )
        values = dict(line.split("=", 1) for line in outputs.read_text().splitlines() if "=" in line)
        return Step(result.returncode, result.stdout + result.stderr, values, summary.read_text())

    return run
