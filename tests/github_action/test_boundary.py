"""The Action's local mode runs the worker's own code on the Actions runner: the same boundary
must hold there (see ``tests/runner/test_boundary.py``)."""

from __future__ import annotations

import subprocess

from tests.boundary import LEGIT_README, assert_untouched, prompt_for
from tests.fakes.github import FakeGitHub
from tests.github_action.test_local_mode import local_env
from tests.runner_support import Remotes, git
from tests.support.github_action import REPO, fixture


def test_the_action_local_mode_holds_the_same_boundary(
    github: FakeGitHub, action_repo: str, test_image: str, remotes: Remotes, run_step, trap
):
    payload = fixture("workflow_dispatch")
    payload["inputs"] = {"prompt": prompt_for(trap)}
    step = run_step("workflow_dispatch", payload, local_env(action_repo, test_image, remotes, agent="attack.sh"))

    assert step.code == 0, step.stdout
    assert_untouched(trap)
    branch = github.pulls[0]["head"]["ref"]
    bare = remotes.root / "Codertocat" / "Hello-World.git"
    shown = subprocess.run(["git", "show", f"{branch}:README.md"], cwd=bare, capture_output=True, check=True)
    assert shown.stdout == LEGIT_README
    assert git("diff", "--name-only", "main", branch, cwd=bare).split() == ["README.md", "data.proc", "notes.txt"]
    assert REPO in github.pulls[0]["html_url"]
