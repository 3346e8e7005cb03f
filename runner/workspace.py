"""The run's directories on the host, and the one way the host runs git.

``root/pristine/<owner>/<repo>.git`` is the host's own bare clone of each repo, made with the
run's GitHub credential; nothing else ever sees it.  ``root/disk/workspace/<repo>`` is the
agent's working copy, on the run's own filesystem (``runner.disk``), cloned from the pristine
one *before* the container starts and bind-mounted at ``/workspace``: from then on everything
under ``workspace/`` is the agent's, and the host never runs git, follows a symlink or
executes anything there (``runner.export`` gets the work out as
data, ``runner.landing`` lands it in the pristine clone).  ``root/prompt`` is mounted
read-only; ``root/export`` is where the exporter writes its bundles.

The token reaches git only through ``GIT_CONFIG_*`` environment variables of the git
process on the host (an ``http.extraHeader``): it is never written to ``.git/config``, a
remote URL, the command line, the container or its image.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import structlog

from core.errors import ErrorCode, OzError
from core.events import Masker
from core.models import RepoRef
from runner.disk import IMAGE, MOUNTPOINT, copy, mount_disk, unmount_disk
from runner.untrusted_files import Refused, open_dir, read_file

log = structlog.get_logger(__name__)
GIT_TIMEOUT = 600
HOST_FILE = "host"
"""In a run's directory, beside (not in) what the agent can write: the host that made it."""


HARDENED = [
    "-c", "core.hooksPath=/dev/null",
    "-c", "core.fsmonitor=false",
    "-c", "gc.auto=0",
    "-c", "maintenance.auto=false",
    "-c", "commit.gpgSign=false",
    "-c", "fetch.fsckObjects=true",
    "-c", "transfer.fsckObjects=true",
]  # fmt: skip
"""Every host git process runs with these: no hooks, no fsmonitor, no background
maintenance, and every object it receives checked (``.git`` in a path, bad ``.gitmodules``)."""


@dataclass(frozen=True)
class ClonedRepo:
    ref: RepoRef
    path: Path
    """The agent's working copy (under ``workspace/``): never touched by the host after start."""
    pristine: Path
    """The host's bare clone, never mounted anywhere."""
    base_branch: str
    base_commit: str
    """Where the agent's work starts: the base branch's tip, or a resumed branch's."""
    token: str | None
    resumed: str | None = None
    """The run's own branch, when an earlier execution pushed it and this one goes on from it."""


@dataclass(frozen=True)
class Fetched:
    """A repo's pristine clone, up to date, before any working copy exists."""

    ref: RepoRef
    pristine: Path
    branch: str
    base_commit: str
    token: str | None
    resumed: str | None = None


def git_env(token: str | None, clone_url: str) -> dict[str, str]:
    """Environment for a host git process; the token rides in an auth header, if any."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="true", GIT_CONFIG_NOSYSTEM="1")
    if token:
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        env.update(
            GIT_CONFIG_COUNT="1",
            GIT_CONFIG_KEY_0=f"http.{clone_url.rstrip('/')}/.extraheader",
            GIT_CONFIG_VALUE_0=f"AUTHORIZATION: basic {basic}",
        )
    return env


def git(args: list[str], *, cwd: Path, env: dict[str, str], masker: Masker, input: str | None = None) -> str:
    """Run git with :data:`HARDENED`; a failure raises with git's own (masked) message."""
    result = subprocess.run(
        ["git", *HARDENED, *args],
        cwd=cwd,
        env=env,
        input=input,
        capture_output=True,
        encoding="utf-8",
        errors="surrogateescape",
        timeout=GIT_TIMEOUT,
    )
    if result.returncode != 0:
        raise GitError(masker.text((result.stderr or result.stdout).strip()))
    return result.stdout


class GitError(Exception):
    pass


class Workspace:
    def __init__(self, root: Path, clone_url: str, masker: Masker) -> None:
        self.root = root
        self.clone_url = clone_url.rstrip("/")
        self.masker = masker
        self.repos: list[ClonedRepo] = []
        self.prompt_dir = root / "prompt"
        self.disk = root / MOUNTPOINT
        """The run's own filesystem (``runner.disk``): the agent's working copies and writable places."""
        self.files = self.disk / "workspace"
        self.disk_image = root / IMAGE
        """Its image, when workspaces have a size."""
        self.pristine = root / "pristine"
        self.export_dir = root / "export"

    @classmethod
    def create(
        cls,
        base: Path,
        run_id: str,
        clone_url: str,
        masker: Masker,
        size: int = 0,
        *,
        mount: bool = True,
        host: str = "",
    ) -> Workspace:
        """The run's directories; the agent's on a filesystem of ``size`` bytes when set —
        mounted later by :meth:`mount` when ``mount`` is false (a snapshot may be its start).
        ``host`` is recorded as the directory's maker (:func:`made_by`)."""
        root = base / run_id
        ws = cls(root, clone_url, masker)
        ws.remove()  # a previous attempt's leftovers
        root.mkdir(parents=True)
        try:
            (root / HOST_FILE).write_text(host)
            for directory in (ws.prompt_dir, ws.pristine, ws.export_dir):
                directory.mkdir(parents=True)
            if mount:
                ws.mount(size)
        except BaseException:
            ws.remove()
            raise
        return ws

    def mount(self, size: int, start: Path | None = None) -> None:
        """The agent's filesystem: empty (with ``workspace/``), or a copy of a snapshot's."""
        mount_disk(self.root, size, start)
        self.files.mkdir(exist_ok=True)

    def use_disk(self, ready: Path) -> None:
        """The agent's filesystem is the one mounted at ``ready/disk`` (a ready copy of a
        snapshot's, moved under this run's directory so its removal unmounts it)."""
        self.disk = ready / MOUNTPOINT
        self.files = self.disk / "workspace"
        self.disk_image = ready / IMAGE

    def url_of(self, ref: RepoRef) -> str:
        return f"{self.clone_url}/{ref.owner}/{ref.repo}.git"

    def clone(self, ref: RepoRef, token: str | None, resume: str | None = None) -> ClonedRepo:
        """The pristine bare clone (with the token), then the agent's working copy from it
        (without); both before the container exists, so nothing here is the agent's yet.
        ``resume``: the run's own branch, to start from when an earlier execution pushed it."""
        return self.check_out(self.fetch(ref, token, resume))

    def fetch(self, ref: RepoRef, token: str | None, resume: str | None = None, seed: Path | None = None) -> Fetched:
        """The pristine bare clone, with the token: cloned, or — from ``seed``, a snapshot's
        copy of it — brought up to date by fetching only the commits it lacks."""
        pristine = self.pristine / ref.owner / f"{ref.repo}.git"
        plain = git_env(None, self.clone_url)
        try:
            if seed is None:
                args = ["clone", "--bare", "--quiet", "--no-tags", "--single-branch"]
                if ref.branch:
                    args += ["--branch", ref.branch]
                git(
                    [*args, self.url_of(ref), str(pristine)],
                    cwd=self.root,
                    env=git_env(token, self.clone_url),
                    masker=self.masker,
                )
            else:
                pristine.parent.mkdir(parents=True, exist_ok=True)
                copy(seed, pristine)
            branch = git(["symbolic-ref", "--short", "HEAD"], cwd=pristine, env=plain, masker=self.masker).strip()
            if seed is not None:
                if ref.branch and ref.branch != branch:
                    raise GitError(f"the snapshot's clone is of {branch}, not {ref.branch}")
                self._fetch_ref(pristine, ref, token, branch)
            resumed = self._fetch_branch(pristine, ref, token, resume) if resume else None
            start = f"refs/heads/{resumed}" if resumed else "HEAD"
            base = git(["rev-parse", "--verify", f"{start}^{{commit}}"], cwd=pristine, env=plain, masker=self.masker)
        except (GitError, subprocess.TimeoutExpired, OzError) as exc:
            raise OzError(
                ErrorCode.ENVIRONMENT_SETUP_FAILED, str(exc)[-2000:] or None, title=f"Failed to clone repository {ref}"
            ) from None
        return Fetched(ref, pristine, branch, base.strip(), token, resumed)

    def check_out(self, fetched: Fetched) -> ClonedRepo:
        """The agent's working copy, cloned from the pristine one (without the token)."""
        ref = fetched.ref
        target = self.files / ref.repo
        plain = git_env(None, self.clone_url)
        try:
            # --no-hardlinks: the agent must not share an inode with the pristine object store.
            checkout = ["--branch", fetched.resumed] if fetched.resumed else []
            git(
                ["clone", "--quiet", "--no-hardlinks", *checkout, str(fetched.pristine), str(target)],
                cwd=self.root,
                env=plain,
                masker=self.masker,
            )
            git(["remote", "set-url", "origin", self.url_of(ref)], cwd=target, env=plain, masker=self.masker)
        except (GitError, subprocess.TimeoutExpired) as exc:
            raise OzError(
                ErrorCode.ENVIRONMENT_SETUP_FAILED, str(exc)[-2000:] or None, title=f"Failed to clone repository {ref}"
            ) from None
        # Keep the gateway's own files out of the agent's commits.
        (target / ".git" / "info").mkdir(exist_ok=True)
        with open(target / ".git" / "info" / "exclude", "a") as exclude:
            exclude.write("\n.oz/\n")
        log.info("workspace.cloned", repo=str(ref), branch=fetched.branch, resumed=fetched.resumed)
        return self.adopt(fetched)

    def adopt(self, fetched: Fetched) -> ClonedRepo:
        """The repo as cloned, its working copy already in place (a snapshot's, at the same commit)."""
        cloned = ClonedRepo(
            fetched.ref,
            self.files / fetched.ref.repo,
            fetched.pristine,
            fetched.branch,
            fetched.base_commit,
            fetched.token,
            fetched.resumed,
        )
        self.repos.append(cloned)
        return cloned

    def _fetch_branch(self, pristine: Path, ref: RepoRef, token: str | None, branch: str) -> str | None:
        """The run's branch into the pristine clone, if the remote has it (else ``None``)."""
        try:
            self._fetch_ref(pristine, ref, token, branch)
        except GitError:
            return None
        return branch

    def _fetch_ref(self, pristine: Path, ref: RepoRef, token: str | None, branch: str) -> None:
        """The remote's ``branch`` into the pristine clone, as it is there (only the commits it lacks)."""
        git(
            ["fetch", "--quiet", "--no-tags", self.url_of(ref), f"+refs/heads/{branch}:refs/heads/{branch}"],
            cwd=pristine,
            env=git_env(token, self.clone_url),
            masker=self.masker,
        )

    def writable_dirs(self) -> dict[str, Path]:
        """For a read-only root: the container's other writable places, on the run's own
        filesystem (``/tmp`` and ``/var/tmp`` world-writable as usual; the homes are filled
        from the image by the caller)."""
        disk = self.disk
        dirs = {"/tmp": disk / "tmp", "/var/tmp": disk / "var-tmp", "/home": disk / "home", "/root": disk / "root"}
        for target in ("/tmp", "/var/tmp"):
            dirs[target].mkdir(exist_ok=True)
            dirs[target].chmod(0o1777)
        return dirs

    def write_attachment(self, name: str, data: bytes) -> str:
        """A request's file at ``/workspace/.oz/attachments/<name>`` (written before the
        container exists, into a directory the host just made); returns its path there."""
        folder = self.files / ".oz" / "attachments"
        for directory in (folder.parent, folder):  # a repository named .oz could carry links here
            if directory.is_symlink() or (directory.exists() and not directory.is_dir()):
                raise OzError(
                    ErrorCode.CONTENT_POLICY_VIOLATION,
                    f"{directory.relative_to(self.files)} in the workspace is not a plain directory",
                    title="The attachments cannot be placed",
                )
            directory.mkdir(exist_ok=True)
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name).strip("._")[:100] or "attachment"
        target, n = folder / stem, 1
        while target.exists():
            n += 1
            target = folder / f"{n}-{stem}"
        with open(target, "xb") as out:  # exclusive: never through anything already there
            out.write(data)
        return f"/workspace/.oz/attachments/{target.name}"

    def write_prompt(self, prompt: str) -> Path:
        return self.write_config("prompt.md", prompt)

    def write_config(self, name: str, content: str) -> Path:
        """A file the agent reads from its read-only ``/oz`` (the prompt, a CLI's settings)."""
        path = self.prompt_dir / name
        path.write_text(content)
        return path

    def remove(self) -> None:
        remove_run_directory(self.root)


def made_by(root: Path) -> str:
    """The host recorded in a run's directory by :meth:`Workspace.create` (``""``: none recorded,
    as in a directory made before hosts were)."""
    try:
        with open_dir(root) as fd:
            return read_file(fd, HOST_FILE, 256).decode("utf-8", "replace").strip()
    except (OSError, Refused):
        return ""


def remove_run_directory(root: Path) -> None:
    """A run's directory gone: its filesystem unmounted, then every file removed."""
    unmount_disk(root)
    remove_tree(root)


def remove_tree(root: Path) -> None:
    """Delete everything under ``root`` without following a single symlink the agent made
    (``shutil.rmtree`` works from directory file descriptors on this platform)."""
    if not shutil.rmtree.avoids_symlink_attacks:
        raise RuntimeError("this platform's shutil.rmtree can follow symlinks; refusing to clean a workspace")
    shutil.rmtree(root, ignore_errors=True)
