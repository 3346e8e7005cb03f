"""Landing the agent's work in the host's pristine clone: fetch the exporter's bundle, check
every new commit, make the gateway's commit, push.

All of it happens in the bare clone the agent never saw, with git run as
:func:`runner.workspace.git` runs it (no hooks, no fsmonitor, objects fsck'd on the way in),
so nothing the agent wrote is ever configuration to the host's git.  What the checks refuse
— a path through ``.git``, a symlink pointing out of the repository, a submodule, a
``.gitmodules`` URL on the local disk, a file over the size cap, more commits than the cap —
ends the run FAILED with ``content_policy_violation`` naming it; nothing is pushed.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from core.settings import Settings
from runner.export import Exported, refusal
from runner.workspace import ClonedRepo, GitError, Workspace, git, git_env

SYMLINK, GITLINK = "120000", "160000"
_IGNORABLE = re.compile("[\u200c-\u200f\u202a-\u202e\u206a-\u206f\ufeff]")
"""Code points HFS+ ignores in names: ``.g\u200cit`` is ``.git`` there."""
_ALLOWED_SUBMODULE_URL = re.compile(r"(https|ssh|git)://[^\s]+|[\w.-]+@[\w.-]+:[^\s]+|\.\.?/[^\s]*")


@dataclass(frozen=True)
class Author:
    name: str
    email: str


@dataclass(frozen=True)
class Change:
    mode: str
    sha: str
    path: str


def is_dot_git(name: str) -> bool:
    """``.git`` however a case-insensitive, HFS+ or NTFS checkout would spell it."""
    folded = _IGNORABLE.sub("", name).rstrip(". ").lower()
    return folded in (".git", "git~1")


class Landing:
    """One repo's landing, with git bound to its pristine clone."""

    def __init__(self, ws: Workspace, repo: ClonedRepo, settings: Settings) -> None:
        self.ws = ws
        self.repo = repo
        self.settings = settings

    def git(self, *args: str, env: dict[str, str] | None = None, input: str | None = None) -> str:
        return git(
            list(args),
            cwd=self.repo.pristine,
            env=env or git_env(None, self.ws.clone_url),
            masker=self.ws.masker,
            input=input,
        )

    def land(self, exported: Exported, message: str, author: Author) -> str | None:
        """The commit to push, or ``None`` when the agent changed nothing."""
        base = self.repo.base_commit
        if exported.work == base:
            return None
        if exported.bundle is not None:
            try:
                self.git(
                    "fetch",
                    "--quiet",
                    "--no-tags",
                    "--no-write-fetch-head",
                    "--no-recurse-submodules",
                    str(exported.bundle),
                    "+refs/oz-export/work:refs/oz/work",
                )
            except GitError as exc:
                raise refusal(self.repo, f"its commits did not pass git's checks: {exc}") from None
        work = self._commit_of(exported.work)
        if self._is_ancestor(work, base):
            return None  # nothing new (the agent only went back in history)
        final = work
        agent = exported.agent_head
        if agent != work and self._parent(work) == agent:  # the exporter committed what was left uncommitted
            final = self._commit(self._tree(work), agent, message, author)
        if not self._is_ancestor(base, final):  # unrelated history: one commit on the base branch
            final = self._commit(self._tree(final), base, message, author)
        self._check(base, final)
        return final

    def push(self, commit: str, branch: str) -> None:
        self.git(
            "push",
            "--quiet",
            "--no-verify",
            "origin",
            f"{commit}:refs/heads/{branch}",
            env=git_env(self.repo.token, self.ws.clone_url),
        )

    # --- checks -------------------------------------------------------------------------

    def _check(self, base: str, final: str) -> None:
        commits = self.git("rev-list", "--reverse", f"{base}..{final}").split()
        if len(commits) > self.settings.export_max_commits:
            raise refusal(
                self.repo, f"{len(commits)} commits, more than the limit of {self.settings.export_max_commits}"
            )
        changes = self._changes(commits)
        sizes = self._sizes([c.sha for c in changes if c.mode not in (SYMLINK, GITLINK)])
        for change in changes:
            self._check_change(change, sizes.get(change.sha, 0))

    def _check_change(self, change: Change, size: int) -> None:
        path = change.path
        if any(is_dot_git(part) for part in path.split("/")):
            raise refusal(self.repo, f"{path} is inside a .git directory")
        if change.mode == GITLINK:
            raise refusal(self.repo, f"{path} adds or moves a submodule")
        if change.mode == SYMLINK:
            target = self.git("cat-file", "blob", change.sha)
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
            if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
                raise refusal(self.repo, f"the symlink {path} points outside the repository ({target})")
        elif size > self.settings.export_max_file_bytes:
            raise refusal(self.repo, f"{path} is {size} bytes, over the limit of {self.settings.export_max_file_bytes}")
        if posixpath.basename(path).lower() == ".gitmodules":
            self._check_gitmodules(change)

    def _check_gitmodules(self, change: Change) -> None:
        try:
            listed = self.git("config", "--no-includes", "--blob", change.sha, "--get-regexp", r"^submodule\..*\.url$")
        except GitError:
            listed = ""  # no URLs at all
        for line in listed.splitlines():
            url = line.split(" ", 1)[1] if " " in line else ""
            if not _ALLOWED_SUBMODULE_URL.fullmatch(url) or "::" in url:
                raise refusal(self.repo, f"{change.path} points a submodule at {url!r}, which is not a remote URL")

    def _changes(self, commits: list[str]) -> list[Change]:
        """Every entry any of ``commits`` adds or modifies (against each of its parents)."""
        if not commits:
            return []
        raw = self.git(
            "diff-tree",
            "--stdin",
            "--root",
            "-m",
            "-r",
            "-z",
            "--no-renames",
            "--no-commit-id",
            input="\n".join(commits) + "\n",
        )
        fields = raw.split("\0")
        seen: dict[tuple[str, str], Change] = {}
        for header, path in zip(fields[0::2], fields[1::2], strict=False):
            parts = header.lstrip(":").split()
            if len(parts) != 5 or parts[4] == "D":
                continue
            seen.setdefault((path, parts[3]), Change(parts[1], parts[3], path))
        return list(seen.values())

    def _sizes(self, shas: list[str]) -> dict[str, int]:
        if not shas:
            return {}
        out = self.git("cat-file", "--batch-check=%(objectname) %(objectsize)", input="\n".join(shas) + "\n")
        pairs = (line.split(" ") for line in out.splitlines())
        return {pair[0]: int(pair[1]) for pair in pairs if len(pair) == 2 and pair[1].isdigit()}

    # --- plumbing -----------------------------------------------------------------------

    def _commit_of(self, sha: str) -> str:
        try:
            return self.git("rev-parse", "--verify", "--quiet", f"{sha}^{{commit}}").strip()
        except GitError:
            raise refusal(self.repo, "the exported commit is missing from its bundle") from None

    def _is_ancestor(self, older: str, newer: str) -> bool:
        try:
            self.git("merge-base", "--is-ancestor", older, newer)
            return True
        except GitError:
            return False

    def _parent(self, commit: str) -> str | None:
        try:
            return self.git("rev-parse", "--verify", "--quiet", f"{commit}^1").strip()
        except GitError:
            return None

    def _tree(self, commit: str) -> str:
        return self.git("rev-parse", f"{commit}^{{tree}}").strip()

    def _commit(self, tree: str, parent: str, message: str, author: Author) -> str:
        env = git_env(None, self.ws.clone_url)
        env.update(
            GIT_AUTHOR_NAME=author.name,
            GIT_AUTHOR_EMAIL=author.email,
            GIT_COMMITTER_NAME=author.name,
            GIT_COMMITTER_EMAIL=author.email,
        )
        return self.git("commit-tree", tree, "-p", parent, "-F", "-", env=env, input=message).strip()
