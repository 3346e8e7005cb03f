"""After a successful agent: commit what changed on a branch, push it, open the PR, and keep
the files the agent left in ``.oz/artifacts/``."""

from __future__ import annotations

import mimetypes
import re
import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from core.errors import ErrorCode, OzError
from core.models import Run
from core.settings import Settings
from core.store import utcnow
from core.store.tables import ArtifactRow
from runner.github import open_pull_request
from runner.workspace import ClonedRepo, GitError, Workspace, git, git_env

MAX_ARTIFACT_BYTES = 20 * 1024 * 1024
MAX_ARTIFACTS = 50


@dataclass(frozen=True)
class PullRequest:
    repo: str
    branch: str
    url: str


@dataclass(frozen=True)
class Author:
    name: str
    email: str


def branch_name(run: Run) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", run.title.lower()).strip("-")[:40].rstrip("-") or "change"
    return f"oz/{run.run_id[:8]}-{slug}"


def has_changes(repo: ClonedRepo, ws: Workspace) -> bool:
    env = git_env(None, ws.clone_url)
    return bool(git(["status", "--porcelain"], cwd=repo.path, env=env, masker=ws.masker).strip())


def commit_message(run: Run, summary: str | None, coauthor: Author | None) -> str:
    message = run.title
    if summary and summary.strip() != run.title:
        message += "\n\n" + summary.strip()
    if coauthor:
        message += f"\n\nCo-authored-by: {coauthor.name} <{coauthor.email}>"
    return message


def pr_body(run: Run, summary: str | None, run_url: str) -> str:
    lines = [summary.strip() if summary else "Changes made by the agent.", ""]
    if run.origin and run.origin.trigger_url:
        lines.append(f"Requested in: {run.origin.trigger_url}")
    lines.append(f"Agent run: {run_url}")
    return "\n".join(lines)


def publish(
    settings: Settings,
    ws: Workspace,
    run: Run,
    *,
    summary: str | None,
    agent: Author,
    coauthor: Author | None,
    run_url: str,
) -> list[PullRequest]:
    """Commit, push and open a PR for every repo the agent changed."""
    opened = []
    branch = branch_name(run)
    for repo in ws.repos:
        if not has_changes(repo, ws) or repo.token is None:  # no token: read-only, never pushed
            continue
        env = git_env(repo.token, ws.clone_url)
        env.update(
            GIT_AUTHOR_NAME=agent.name,
            GIT_AUTHOR_EMAIL=agent.email,
            GIT_COMMITTER_NAME=agent.name,
            GIT_COMMITTER_EMAIL=agent.email,
        )
        try:
            git(["checkout", "-q", "-b", branch], cwd=repo.path, env=env, masker=ws.masker)
            git(["add", "-A"], cwd=repo.path, env=env, masker=ws.masker)
            git(
                ["commit", "-q", "-m", commit_message(run, summary, coauthor)], cwd=repo.path, env=env, masker=ws.masker
            )
            git(["push", "-q", "origin", f"HEAD:refs/heads/{branch}"], cwd=repo.path, env=env, masker=ws.masker)
        except GitError as exc:
            raise OzError(ErrorCode.NOT_AUTHORIZED, f"pushing {branch} to {repo.ref.full_name} failed: {exc}") from None
        url = open_pull_request(
            settings,
            repo.token or "",
            repo.ref,
            head=branch,
            base=repo.base_branch,
            title=run.title,
            body=pr_body(run, summary, run_url),
        )
        opened.append(PullRequest(repo.ref.full_name, branch, url))
    return opened


def unpublished(ws: Workspace) -> list[str]:
    """Repos with changes that could not be pushed because the run could only read them."""
    return [r.ref.full_name for r in ws.repos if r.token is None and has_changes(r, ws)]


def record_pull_requests(session: Session, run_id: str, pulls: list[PullRequest]) -> None:
    for pull in pulls:
        session.add(
            ArtifactRow(
                uid=str(uuid.uuid4()),
                run_id=run_id,
                artifact_type="PULL_REQUEST",
                data={"branch": pull.branch, "url": pull.url},
                created_at=utcnow(),
            )
        )


def record_files(session: Session, ws: Workspace, run_id: str) -> int:
    """Files under ``.oz/artifacts/`` become downloadable FILE artifacts (size-capped)."""
    if not ws.artifacts_dir.is_dir():
        return 0
    count = 0
    for path in sorted(p for p in ws.artifacts_dir.rglob("*") if p.is_file() and not p.is_symlink()):
        if count >= MAX_ARTIFACTS or path.stat().st_size > MAX_ARTIFACT_BYTES:
            continue
        relative = path.relative_to(ws.files).as_posix()
        session.add(
            ArtifactRow(
                uid=str(uuid.uuid4()),
                run_id=run_id,
                artifact_type="FILE",
                created_at=utcnow(),
                content=path.read_bytes(),
                data={
                    "filename": path.name,
                    "filepath": relative,
                    "size_bytes": path.stat().st_size,
                    "mime_type": mimetypes.guess_type(path.name)[0] or "application/octet-stream",
                },
            )
        )
        count += 1
    return count
