"""A run's skill, read from GitHub before the agent starts: the ``SKILL.md`` its spec names
(``core/skills.py``), through the contents API with the run's credential for that repo.

Read through the API, never from a clone: the clone is the agent's to change, and a
``SKILL.md`` that is a symlink there would have the host read whatever it points at.  The API
says what each path is; only a regular file of at most ``MAX_BYTES`` is taken.
"""

from __future__ import annotations

from github import GithubException

from core.errors import ErrorCode, OzError
from core.github_oauth import github_client
from core.models import RepoRef
from core.settings import Settings
from core.skills import SkillSpec, as_prompt
from runner.github import answering

MAX_BYTES = 256 * 1024


def skill_repo(spec: SkillSpec, environment_repos: list[RepoRef]) -> RepoRef:
    """The repo a spec reads from; ``repo:skill-name`` means the environment's repo of that name."""
    if spec.owner:
        return RepoRef(owner=spec.owner, repo=spec.repo)
    for ref in environment_repos:
        if ref.repo == spec.repo:
            return RepoRef(owner=ref.owner, repo=ref.repo, branch=ref.branch)
    raise OzError(
        ErrorCode.RESOURCE_NOT_FOUND,
        f"skill {spec.repo}:{spec.target} names the repo {spec.repo!r}, which is not in the run's environment; "
        "name its owner (owner/repo:skill)",
        title="Skill not found",
    )


@answering
def read_skill(settings: Settings, spec: SkillSpec, ref: RepoRef, token: str | None) -> str:
    """The skill as the run's base prompt, or ``resource_not_found`` naming every path tried."""
    try:
        repo = github_client(settings, token).get_repo(ref.full_name)
    except GithubException as exc:
        if exc.status in (401, 403, 404):
            why = f"the repo {ref.full_name} cannot be read with the run's credential"
            raise _not_found(spec, ref, [], why) from None
        raise
    for path in spec.candidates():
        try:
            found = repo.get_contents(path, ref=ref.branch) if ref.branch else repo.get_contents(path)
        except GithubException as exc:
            if exc.status == 404:
                continue
            raise
        if isinstance(found, list) or found.type != "file":
            raise _not_found(spec, ref, [path], f"{path} is not a regular file")
        if found.size > MAX_BYTES:
            raise OzError(
                ErrorCode.INVALID_REQUEST,
                f"{ref.full_name}:{path} is {found.size} bytes; a skill may have at most {MAX_BYTES}",
                title="Skill too large",
            )
        return as_prompt(spec, found.decoded_content.decode("utf-8", errors="replace"))
    raise _not_found(spec, ref, spec.candidates(), None)


def _not_found(spec: SkillSpec, ref: RepoRef, tried: list[str], why: str | None) -> OzError:
    where = ", ".join(f"{ref.full_name}:{path}" for path in tried)
    detail = why or f"no {where}"
    return OzError(ErrorCode.RESOURCE_NOT_FOUND, f"skill {spec.name!r}: {detail}", title="Skill not found")
