"""The run's workspace, prepared on the host: repos cloned with the run's GitHub credential,
then bind-mounted into the container.

The token reaches git only through ``GIT_CONFIG_*`` environment variables of the git
process on the host (an ``http.extraHeader``): it is never written to ``.git/config``, a
remote URL, the command line, the container or its image.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import structlog

from core.errors import ErrorCode, OzError
from core.events import Masker
from core.models import RepoRef

log = structlog.get_logger(__name__)
GIT_TIMEOUT = 600


@dataclass(frozen=True)
class ClonedRepo:
    ref: RepoRef
    path: Path
    base_branch: str
    token: str | None


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


def git(args: list[str], *, cwd: Path, env: dict[str, str], masker: Masker) -> str:
    """Run git; a failure raises with git's own (masked) message."""
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=GIT_TIMEOUT)
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
        self.files = root / "workspace"

    @classmethod
    def create(cls, base: Path, run_id: str, clone_url: str, masker: Masker) -> Workspace:
        root = base / run_id
        if root.exists():
            shutil.rmtree(root)  # a previous attempt's leftovers
        ws = cls(root, clone_url, masker)
        ws.files.mkdir(parents=True)
        ws.prompt_dir.mkdir()
        return ws

    def url_of(self, ref: RepoRef) -> str:
        return f"{self.clone_url}/{ref.owner}/{ref.repo}.git"

    def clone(self, ref: RepoRef, token: str | None) -> ClonedRepo:
        target = self.files / ref.repo
        env = git_env(token, self.clone_url)
        args = ["clone", "--quiet", "--no-tags", "--single-branch"]
        if ref.branch:
            args += ["--branch", ref.branch]
        try:
            git([*args, self.url_of(ref), str(target)], cwd=self.files, env=env, masker=self.masker)
            branch = git(["rev-parse", "--abbrev-ref", "HEAD"], cwd=target, env=env, masker=self.masker).strip()
        except (GitError, subprocess.TimeoutExpired) as exc:
            raise OzError(
                ErrorCode.ENVIRONMENT_SETUP_FAILED, str(exc)[-2000:] or None, title=f"Failed to clone repository {ref}"
            ) from None
        # Keep the gateway's own files out of the agent's commits.
        (target / ".git" / "info").mkdir(exist_ok=True)
        with open(target / ".git" / "info" / "exclude", "a") as exclude:
            exclude.write("\n.oz/\n")
        cloned = ClonedRepo(ref, target, branch, token)
        self.repos.append(cloned)
        log.info("workspace.cloned", repo=str(ref), branch=branch)
        return cloned

    def write_prompt(self, prompt: str) -> Path:
        path = self.prompt_dir / "prompt.md"
        path.write_text(prompt)
        return path

    @property
    def artifacts_dir(self) -> Path:
        return self.files / ".oz" / "artifacts"

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
