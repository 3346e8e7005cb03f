"""Export and landing without an agent container: the test plays the agent with the host's own
git in the working copy (test code is trusted), then the real exporter container and the real
landing run; commits crafted with plumbing cover what a git-carrying agent could send."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import docker
import pytest

from core.errors import OzError
from core.events import Masker
from core.models import RepoRef
from core.settings import Settings
from runner import export, pulls
from runner.backends import DockerBackend
from runner.landing import Author, Landing, is_dot_git
from runner.workspace import ClonedRepo, Workspace
from tests.runner_support import Remotes, git, settings_with

AGENT = Author("Oz Agent", "oz-agent@users.noreply.github.com")
AS_AGENT = ["-c", "user.name=Agent Smith", "-c", "user.email=smith@agents.test"]


@pytest.fixture
def cloned(tmp_path: Path, remotes: Remotes) -> tuple[Workspace, ClonedRepo]:
    remotes.create("acme", "api")
    ws = Workspace.create(tmp_path / "work", "run-1", remotes.url, Masker())
    return ws, ws.clone(RepoRef(owner="acme", repo="api"), None)


@pytest.fixture
def land_settings(settings: Settings) -> Settings:
    return settings_with(settings, pull_images=False)


def exported_and_landed(
    docker_client: docker.DockerClient, settings: Settings, ws: Workspace, repo: ClonedRepo, message: str = "msg"
) -> str | None:
    (exported,) = export.export_all(DockerBackend(docker_client), settings, ws, "run-1")
    return Landing(ws, repo, settings).land(exported, message, AGENT)


def log_of(repo: ClonedRepo, commit: str) -> list[str]:
    out = git("log", "--format=%an|%s", f"{repo.base_commit}..{commit}", cwd=repo.pristine)
    return out.splitlines()


def test_the_agents_own_commits_are_kept_and_what_it_left_uncommitted_is_the_gateways(
    docker_client: docker.DockerClient, land_settings: Settings, cloned
):
    ws, repo = cloned
    for n in (1, 2):
        (repo.path / f"step{n}.txt").write_text(f"step {n}\n")
        git("add", ".", cwd=repo.path)
        git(*AS_AGENT, "commit", "-q", "-m", f"Step {n}", cwd=repo.path)
    (repo.path / "README.md").write_text("left uncommitted\n")

    final = exported_and_landed(docker_client, land_settings, ws, repo, "Fix the README\n\nCo-authored-by: A <a@x>")

    assert log_of(repo, final) == ["Oz Agent|Fix the README", "Agent Smith|Step 2", "Agent Smith|Step 1"]
    assert git("show", f"{final}:README.md", cwd=repo.pristine) == "left uncommitted\n"
    assert "Co-authored-by: A <a@x>" in git("log", "-1", "--format=%B", final, cwd=repo.pristine)


def test_only_committed_work_needs_no_gateway_commit(docker_client, land_settings: Settings, cloned):
    ws, repo = cloned
    (repo.path / "README.md").write_text("committed by the agent\n")
    git(*AS_AGENT, "commit", "-q", "-am", "Agent fix", cwd=repo.path)
    final = exported_and_landed(docker_client, land_settings, ws, repo)
    assert log_of(repo, final) == ["Agent Smith|Agent fix"]


def test_no_changes_and_a_reset_to_older_history_land_nothing(docker_client, land_settings: Settings, cloned):
    ws, repo = cloned
    assert exported_and_landed(docker_client, land_settings, ws, repo) is None
    (repo.path / "README.md").write_text("x\n")
    git(*AS_AGENT, "commit", "-q", "-am", "x", cwd=repo.path)
    git("reset", "-q", "--hard", repo.base_commit, cwd=repo.path)
    assert exported_and_landed(docker_client, land_settings, ws, repo) is None


def test_history_unrelated_to_the_base_becomes_one_commit_on_it(docker_client, land_settings: Settings, cloned):
    ws, repo = cloned
    git("checkout", "-q", "--orphan", "fresh", cwd=repo.path)
    (repo.path / "README.md").write_text("rewritten from scratch\n")
    git("add", "-A", cwd=repo.path)
    git(*AS_AGENT, "commit", "-q", "-m", "orphan", cwd=repo.path)
    final = exported_and_landed(docker_client, land_settings, ws, repo, "Rewrite")
    assert git("rev-parse", f"{final}^", cwd=repo.pristine).strip() == repo.base_commit
    assert log_of(repo, final) == ["Oz Agent|Rewrite"]


def test_a_broken_repository_is_reported_not_guessed_at(docker_client, land_settings: Settings, cloned):
    ws, repo = cloned
    (repo.path / ".git" / "HEAD").write_text("ref: refs/heads/nowhere\n")
    with pytest.raises(OzError) as raised:
        export.export_all(DockerBackend(docker_client), land_settings, ws, "run-1")
    assert raised.value.code == "agent_process_failed"
    assert raised.value.message.startswith("The agent left acme/api without a usable git repository (")


Entry = tuple[str, str, "bytes | str | list[Entry]"]


def mktree(repo: Path, entries: list[Entry]) -> str:
    """A tree object of ``entries`` (mode, name, content; a list for a subtree, a commit id for
    a gitlink), made with plumbing that checks nothing, as a git-carrying agent could."""
    lines = []
    for mode, name, content in entries:
        if mode == "040000":
            kind, sha = "tree", mktree(repo, content)
        elif mode == "160000":
            kind, sha = "commit", content
        else:
            data = content if isinstance(content, bytes) else content.encode()
            kind = "blob"
            sha = (
                subprocess.run(
                    ["git", "hash-object", "-w", "--stdin"], cwd=repo, input=data, capture_output=True, check=True
                )
                .stdout.decode()
                .strip()
            )
        lines.append(f"{mode} {kind} {sha}\t{name}")
    return git("mktree", "--missing", cwd=repo, input="\n".join(lines) + "\n").strip()


def crafted(repo: ClonedRepo, entries: list[Entry], commits: int = 1) -> export.Exported:
    """``commits`` commits of that tree on top of the base, bundled where the exporter would
    have left them."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@x"}
    env.update(GIT_COMMITTER_NAME="a", GIT_COMMITTER_EMAIL="a@x")
    tree, head = mktree(repo.path, entries), repo.base_commit
    for n in range(commits):
        head = subprocess.run(
            ["git", "commit-tree", tree, "-p", head, "-m", f"c{n}"],
            cwd=repo.path,
            env=env,
            capture_output=True,
            text=True,
        ).stdout.strip()
    git("update-ref", "refs/oz-export/work", head, cwd=repo.path)
    bundle = repo.pristine.parent / "crafted.bundle"
    git("bundle", "create", "-q", str(bundle), "refs/oz-export/work", f"^{repo.base_commit}", cwd=repo.path)
    return export.Exported(repo, head, head, bundle)


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        ([("040000", ".GIT", [("100644", "config", "[core]\n\tfsmonitor = x\n")])], ".GIT/config is inside a .git"),
        ([("160000", "vendor", "a" * 40)], "vendor adds or moves a submodule"),
        ([("120000", "abs", "/etc/shadow")], "the symlink abs points outside the repository (/etc/shadow)"),
        ([("100644", "big.bin", b"x" * 2048)], "big.bin is 2048 bytes, over the limit of 1024"),
        (
            [("100644", ".gitmodules", '[submodule "s"]\n\tpath = s\n\turl = ext::sh -c touch% /tmp/pwned\n')],
            ".gitmodules points a submodule at 'ext::sh -c touch% /tmp/pwned', which is not a remote URL",
        ),
    ],
)
def test_crafted_commits_are_refused(land_settings: Settings, cloned, entries: list[Entry], reason: str):
    ws, repo = cloned
    exported = crafted(repo, [("100644", "README.md", "# api\n"), *entries])
    settings = settings_with(land_settings, export_max_file_bytes=1024)
    with pytest.raises(OzError) as raised:
        Landing(ws, repo, settings).land(exported, "m", AGENT)
    assert raised.value.code == "content_policy_violation"
    assert reason in raised.value.message
    assert git("for-each-ref", "refs/heads", cwd=repo.pristine).count("\n") == 1  # nothing new to push


def test_more_commits_than_the_cap_are_refused(land_settings: Settings, cloned):
    ws, repo = cloned
    exported = crafted(repo, [("100644", "README.md", "y\n")], commits=4)
    with pytest.raises(OzError) as raised:
        Landing(ws, repo, settings_with(land_settings, export_max_commits=3)).land(exported, "m", AGENT)
    assert "4 commits, more than the limit of 3" in raised.value.message


@pytest.mark.parametrize("name", [".git", ".GIT", ".Git.", ".git ", "git~1", ".g\u200cit"])
def test_every_spelling_of_dot_git(name: str):
    assert is_dot_git(name)


@pytest.mark.parametrize("name", [".github", ".gitignore", "git", ".gitx"])
def test_names_that_only_look_like_dot_git(name: str):
    assert not is_dot_git(name)


def test_artifacts_are_read_without_following_symlinks(tmp_path: Path, store, trap):
    victim = trap[1]
    ws = Workspace.create(tmp_path / "work", "run-2", "file:///nowhere", Masker())
    artifacts = ws.files / ".oz" / "artifacts"
    (artifacts / "sub").mkdir(parents=True)
    (artifacts / "report.txt").write_text("mine")
    (artifacts / "sub" / "deep.txt").write_text("deep")
    (artifacts / "passwd").symlink_to("/etc/passwd")
    (artifacts / "precious").symlink_to(victim / "precious.txt")
    (artifacts / "linked-dir").symlink_to(victim)
    os.mkfifo(artifacts / "pipe")  # reading it would block the worker forever
    with store.session() as session:
        assert pulls.record_files(session, ws, "run-2") == 2
        rows = sorted((r.data["filepath"], r.content) for r in session.new)
        session.expunge_all()  # no run row to attach them to
    assert rows == [(".oz/artifacts/report.txt", b"mine"), (".oz/artifacts/sub/deep.txt", b"deep")]


@pytest.mark.parametrize("layout", ["oz", "artifacts"])
def test_a_symlinked_oz_or_artifacts_directory_is_refused(tmp_path: Path, store, trap, layout: str):
    ws = Workspace.create(tmp_path / "work", "run-3", "file:///nowhere", Masker())
    (trap[1] / "artifacts").mkdir()
    (trap[1] / "artifacts" / "stolen.txt").write_text("host data")
    if layout == "oz":
        (ws.files / ".oz").symlink_to(trap[1])
    else:
        (ws.files / ".oz").mkdir()
        (ws.files / ".oz" / "artifacts").symlink_to(trap[1] / "artifacts")
    with store.session() as session:
        assert pulls.record_files(session, ws, "run-3") == 0
        assert not session.new


def test_removal_never_follows_a_symlink(tmp_path: Path, trap):
    ws = Workspace.create(tmp_path / "work", "run-4", "file:///nowhere", Masker())
    (ws.files / "rootlink").symlink_to("/")
    (ws.files / "victim").symlink_to(trap[1])
    (ws.files / "nested" / "deeper").mkdir(parents=True)
    (ws.files / "nested" / "deeper" / "victim-file").symlink_to(trap[1] / "precious.txt")
    (ws.files / "nested" / "locked").mkdir(mode=0)
    ws.remove()
    assert not ws.root.exists()
    assert (trap[1] / "precious.txt").read_text() == "keep me"
