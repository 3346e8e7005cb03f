"""After a successful agent: land its exported work, push a branch, open the PR, and keep the
files the agent left in ``.oz/artifacts/``."""

from __future__ import annotations

import functools
import mimetypes
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import ErrorCode, OzError
from core.models import Run
from core.settings import Settings
from core.store import utcnow
from core.store.tables import ArtifactRow
from runner.export import Exported
from runner.github import open_pull_request, open_pull_request_for
from runner.landing import Author, Landing
from runner.untrusted_files import Missing, Refused, open_dir, read_file, walk
from runner.workspace import ClonedRepo, GitError, Workspace

MAX_ARTIFACT_BYTES = 20 * 1024 * 1024
MAX_ARTIFACTS = 50
ARTIFACTS_DIR = (".oz", "artifacts")
log = structlog.get_logger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class PullRequest:
    repo: str
    branch: str
    url: str


def branch_name(run: Run) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", run.title.lower()).strip("-")[:40].rstrip("-") or "change"
    return f"oz/{run.run_id[:8]}-{slug}"


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


@dataclass(frozen=True)
class Published:
    opened: list[PullRequest]
    read_only: list[str]
    """Repos the agent changed that the run could only read (no token): nothing was pushed."""


def publish(
    settings: Settings,
    ws: Workspace,
    exports: list[Exported],
    run: Run,
    *,
    summary: str | None,
    agent: Author,
    coauthor: Author | None,
    run_url: str,
) -> Published:
    """Land every repo's exported work in its pristine clone (all of them are checked before
    anything is pushed), then push a branch and open a PR for each one the agent changed."""
    branch = branch_name(run)
    message = commit_message(run, summary, coauthor)
    landed = []
    for exported in exports:
        landing = Landing(ws, exported.repo, settings)
        commit = landing.land(exported, message, agent)
        if commit is not None:
            landed.append((landing, commit))
    opened, read_only = [], []
    for landing, commit in landed:
        repo = landing.repo
        if repo.token is None:
            read_only.append(repo.ref.full_name)
            continue
        try:
            landing.push(commit, branch)
        except GitError as exc:
            raise OzError(ErrorCode.NOT_AUTHORIZED, f"pushing {branch} to {repo.ref.full_name} failed: {exc}") from None
        body = pr_body(run, summary, run_url)
        url = _with_retries(settings, functools.partial(_pull_request, settings, repo, branch, run.title, body))
        opened.append(PullRequest(repo.ref.full_name, branch, url))
    return Published(opened, read_only)


def _pull_request(settings: Settings, repo: ClonedRepo, branch: str, title: str, body: str) -> str:
    """The branch's open PR if there is one (an earlier execution's, updated by the push, or
    this one's, opened before GitHub's answer was lost), else a new one: safe to repeat."""
    assert repo.token is not None, "only repos the run may write to reach the pull request step"
    found = open_pull_request_for(settings, repo.token, repo.ref, branch)
    return found or open_pull_request(
        settings, repo.token, repo.ref, head=branch, base=repo.base_branch, title=title, body=body
    )


def _with_retries(settings: Settings, step: Callable[[], T]) -> T:
    """A step that is safe to repeat, tried again on a retryable platform error (GitHub not
    answering) after the agent's work is done: losing that work to a 502 would be worse."""
    for attempt in range(settings.platform_retries + 1):
        try:
            return step()
        except OzError as error:
            if not error.retryable or attempt == settings.platform_retries:
                raise
            log.warning("pulls.retrying", attempt=attempt + 1, code=error.code.value)
            time.sleep(settings.platform_retry_seconds * 2**attempt)
    raise AssertionError("unreachable")


def pushed_before(session: Session, run_id: str) -> bool:
    """Whether an earlier execution of the run opened a PR (so its branch exists to go on from)."""
    found = session.scalar(
        select(ArtifactRow.uid).where(ArtifactRow.run_id == run_id, ArtifactRow.artifact_type == "PULL_REQUEST")
    )
    return found is not None


def record_pull_requests(session: Session, run_id: str, pulls: list[PullRequest]) -> None:
    """Each PR once, however many executions pushed to it."""
    known = {
        row.data.get("url")
        for row in session.scalars(
            select(ArtifactRow).where(ArtifactRow.run_id == run_id, ArtifactRow.artifact_type == "PULL_REQUEST")
        )
    }
    for pull in pulls:
        if pull.url in known:
            continue
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
    """Files under ``.oz/artifacts/`` become downloadable FILE artifacts (size-capped), read
    without following any symlink: a symlinked ``.oz``, ``artifacts`` or file is skipped."""
    count = 0
    try:
        with open_dir(ws.files, *ARTIFACTS_DIR) as artifacts:
            for dir_fd, name, found in walk(artifacts):
                if count >= MAX_ARTIFACTS:
                    break
                if found.size > MAX_ARTIFACT_BYTES:
                    continue
                try:
                    content = read_file(dir_fd, name, MAX_ARTIFACT_BYTES)
                except Refused:
                    continue
                session.add(
                    ArtifactRow(
                        uid=str(uuid.uuid4()),
                        run_id=run_id,
                        artifact_type="FILE",
                        created_at=utcnow(),
                        content=content,
                        data={
                            "filename": name,
                            "filepath": "/".join([*ARTIFACTS_DIR, found.path]),
                            "size_bytes": len(content),
                            "mime_type": mimetypes.guess_type(name)[0] or "application/octet-stream",
                        },
                    )
                )
                count += 1
    except Missing:
        pass  # the agent left no artifacts
    except Refused as refused:
        log.warning("artifacts.refused", run_id=run_id, reason=str(refused))
    return count
