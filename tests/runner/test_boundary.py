"""The sandbox boundary: nothing the agent wrote runs on the host, is followed by the host, or
reaches the PR other than the agent's own edit.

``tests/agents/attack.sh`` stands in for a prompt-injected agent: it plants every hook name,
``core.fsmonitor`` (through an ``include.path``), ``core.hooksPath``, ``core.sshCommand``,
clean/smudge/process filters, aliases, ``diff.external``, ``gpg.program``, a credential helper,
``uploadpack``/``receivepack``, ``pushInsteadOf`` and submodule config, a symlinked
``.oz/artifacts`` → ``/etc``, and symlinks to ``/`` and to a host directory in the workspace.
The control test first proves those plants are live by running the git commands a naive host
would; the real runs then must leave no marker at all.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from core import runs
from core.store import Store
from core.store.tables import ArtifactRow
from runner.context import WorkerContext
from runner.job import run_job
from tests.boundary import AGENTS, LEGIT_NOTES, LEGIT_PROC, LEGIT_README, assert_untouched, prompt_for
from tests.fakes.github import FakeGitHub
from tests.runner_support import Person, Remotes, git, with_settings

EXPECTED_LIVE = {
    "fsmonitor-via-include",
    "filter-clean",
    "filter-process",
    "hookspath-post-index-change",
    "hookspath-reference-transaction",
    "hookspath-post-checkout",
    "hookspath-pre-commit",
    "hookspath-prepare-commit-msg",
    "hookspath-commit-msg",
    "gpg-program",
    "diff-external",
    "uploadpack",
    "ssh-command",
}
"""What a host running the old code's git commands in the workspace would have executed."""


def naive_host_git(repo: Path) -> None:
    """What ``runner/pulls.py`` used to run on the host, in the agent's working copy, plus a
    diff and a fetch; failures are expected (the plants break things), markers are the point."""
    for args in (
        ["status", "--porcelain"],
        ["checkout", "-q", "-b", "oz/branch"],
        ["add", "README.md", "notes.txt"],
        ["-c", "user.name=x", "-c", "user.email=x@x", "commit", "-q", "-m", "fix"],
        ["diff", "HEAD"],
        ["fetch", "-q", "origin"],
        ["push", "-q", "origin", "HEAD:refs/heads/oz/branch"],
        ["add", "-A"],
    ):
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1"}
        subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, timeout=60)


def test_control_the_plants_are_live_against_a_naive_host(tmp_path: Path, remotes: Remotes, trap):
    remotes.create("acme", "api")
    workspace = tmp_path / "naive-workspace"
    workspace.mkdir()
    git("clone", "-q", f"{remotes.url}/acme/api.git", str(workspace / "api"), cwd=tmp_path)
    prompt = tmp_path / "prompt.md"
    prompt.write_text(prompt_for(trap))
    env = {**os.environ, "WS": str(workspace), "OZ_PROMPT_FILE": str(prompt)}
    subprocess.run(["sh", str(AGENTS / "attack.sh")], cwd=workspace / "api", env=env, check=True, capture_output=True)

    naive_host_git(workspace / "api")

    fired = {p.name for p in trap[0].iterdir()}
    assert fired >= EXPECTED_LIVE, f"missing: {EXPECTED_LIVE - fired}"
    # The clean filter also emptied the legitimate edit in what the naive host staged.
    assert git("show", ":README.md", cwd=workspace / "api") == ""


def test_nothing_the_agent_planted_runs_on_the_host(
    ctx: WorkerContext,
    alice: Person,
    make_env,
    start_run,
    remotes: Remotes,
    github: FakeGitHub,
    store: Store,
    trap,
):
    remotes.create("acme", "api")
    github.add_repo("acme", "api", collaborators={"alice-gh": "write"})
    ctx = with_settings(ctx, command_harness="/bin/sh /opt/agents/attack.sh", command_harness_format="text")
    run_id = start_run(alice.principal, make_env(repos=["acme/api"]), prompt=prompt_for(trap))

    assert run_job(ctx, run_id) == "SUCCEEDED"

    assert_untouched(trap)
    branch = github.pulls[0]["head"]["ref"]
    bare = remotes.root / "acme" / "api.git"
    changed = git("diff", "--name-only", "main", branch, cwd=bare).split()
    assert changed == ["README.md", "data.proc", "notes.txt"]  # nothing else: no attributes, hooks or config
    for path, content in (("README.md", LEGIT_README), ("notes.txt", LEGIT_NOTES), ("data.proc", LEGIT_PROC)):
        shown = subprocess.run(["git", "show", f"{branch}:{path}"], cwd=bare, capture_output=True, check=True)
        assert shown.stdout == content  # byte for byte: no filter touched it
    with store.reader() as session:
        files = session.query(ArtifactRow).filter_by(run_id=run_id, artifact_type="FILE").all()
    assert files == []  # .oz/artifacts → /etc was not followed
    assert not (ctx.settings.effective_work_dir / run_id).exists()


@pytest.mark.parametrize(
    ("plant", "reason"),
    [
        ("ln -s /etc/passwd leak", "the symlink leak points outside the repository (/etc/passwd)"),
        ("mkdir -p docs && ln -s ../../outside docs/up", "the symlink docs/up points outside the repository"),
        (
            "printf '[submodule \"x\"]\\n\\tpath = x\\n\\turl = /srv/private.git\\n' > .gitmodules",
            ".gitmodules points a submodule at '/srv/private.git', which is not a remote URL",
        ),
    ],
)
def test_changes_that_break_the_rules_are_refused_and_nothing_is_pushed(
    ctx: WorkerContext,
    alice: Person,
    make_env,
    start_run,
    remotes: Remotes,
    github: FakeGitHub,
    store: Store,
    plant: str,
    reason: str,
):
    remotes.create("acme", "api")
    github.add_repo("acme", "api", collaborators={"alice-gh": "write"})
    script = f"echo fixed > README.md; {plant}; echo done"
    ctx = with_settings(ctx, command_harness=shlex.join(["/bin/sh", "-c", script]), command_harness_format="text")
    run_id = start_run(alice.principal, make_env(repos=["acme/api"]))

    assert run_job(ctx, run_id) == "FAILED"

    with store.reader() as session:
        status = runs.load_run(session, run_id).status_message
    assert status.error_code == "content_policy_violation"
    assert status.message.startswith("The agent's changes to acme/api were not pushed (")
    assert reason in status.message
    assert github.pulls == [] and remotes.branches("acme", "api") == ["main"]


def test_attachments_never_follow_a_link_a_repository_put_where_they_go(tmp_path):
    """A repository named ``.oz`` is cloned where attachments go; a link it carries there must not
    lead the host's write anywhere."""
    from core.errors import OzError
    from core.events import Masker
    from runner.workspace import Workspace

    outside = tmp_path / "outside"
    outside.mkdir()
    ws = Workspace.create(tmp_path / "work", "run-1", "file:///nowhere", Masker())
    (ws.files / ".oz").mkdir()
    (ws.files / ".oz" / "attachments").symlink_to(outside)
    with pytest.raises(OzError, match="not a plain directory"):
        ws.write_attachment("diagram.png", b"png")
    assert list(outside.iterdir()) == []
    ws.remove()
