"""Skill specs (``owner/repo:skill-name``, ``owner/repo:path/to/SKILL.md``, ``repo:skill-name``)
as the Oz CLI's ``--skill`` and the API's ``skill_spec`` take them, and a skill file as it
becomes the run's base prompt.

A spec is checked when the run is asked for (a malformed one is the caller's ``invalid_request``);
the file itself is read by the runner, from GitHub, with the run's credential
(``runner/skills.py``) — a skill that is not there fails the run as ``resource_not_found``
naming where it looked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import OzError, invalid

SKILL_FILE = "SKILL.md"
SKILL_DIRS = (".warp/skills", ".agents/skills", ".claude/skills", "skills")
"""Where a skill given by name is looked for, in this order: Warp's own place first, then the
agent-neutral and Claude Code conventions, then a plain ``skills/`` folder."""
_PART = r"[A-Za-z0-9_.-]+"
SPEC = re.compile(rf"^(?:(?P<owner>{_PART})/)?(?P<repo>{_PART}):(?P<target>[^\s:]+)$")


@dataclass(frozen=True)
class SkillSpec:
    owner: str | None
    """``None`` for ``repo:skill-name``: the owner is the environment's repo of that name."""
    repo: str
    target: str
    """A skill's name, or the path of its ``SKILL.md``."""

    @property
    def is_path(self) -> bool:
        return self.target.upper().endswith(SKILL_FILE.upper())

    @property
    def name(self) -> str:
        parts = [p for p in self.target.split("/") if p]
        if self.is_path:
            parts = parts[:-1]
        return parts[-1] if parts else self.target

    def candidates(self) -> list[str]:
        """The paths to try, in order."""
        if self.is_path:
            return [self.target.lstrip("/")]
        return [f"{folder}/{self.target}/{SKILL_FILE}" for folder in SKILL_DIRS]


def parse(spec: str) -> SkillSpec:
    match = SPEC.match(spec.strip())
    target = match["target"] if match else ""
    if not match or ".." in target.split("/") or (not target.upper().endswith(".MD") and "/" in target):
        raise invalid(
            f"skill {spec!r} must look like owner/repo:skill-name, owner/repo:path/to/SKILL.md or repo:skill-name"
        )
    return SkillSpec(match["owner"], match["repo"], target)


def skill_name(spec: str | None) -> str | None:
    """``owner/repo:path/to/deploy/SKILL.md`` → ``deploy``; ``repo:review`` → ``review``."""
    if not spec:
        return None
    try:
        return parse(spec).name
    except OzError:
        return None


FRONT_MATTER = re.compile(r"\A---\s*\n.*?\n---\s*(\n|\Z)", re.DOTALL)


def as_prompt(spec: SkillSpec, text: str) -> str:
    """The skill's instructions as the run's base prompt: its body, the YAML front matter
    (name, description: what a skill index reads) left out."""
    body = FRONT_MATTER.sub("", text, count=1).strip()
    return f"Follow the skill {spec.name!r}:\n\n{body}"
