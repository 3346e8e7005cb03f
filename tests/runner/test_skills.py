"""A run from a skill: the ``SKILL.md`` its spec names is read from GitHub with the run's
credential and becomes the base of the agent's prompt (its front matter left out) — a
skill-only run no longer sends the agent an empty prompt.  A skill that is not there, or is not
a regular file, fails the run as ``resource_not_found`` naming where it looked; a malformed spec
is refused when the run is asked for."""

from __future__ import annotations

import pytest

from core import runs
from core.errors import OzError
from core.events import EventKind, transcript
from core.models.wire import RunAgentRequest
from core.store import Store
from runner.context import WorkerContext
from runner.job import run_job
from tests.fakes.github import FakeGitHub
from tests.runner_support import Person, Remotes, with_settings
from tests.support.people import AGENT_LIMIT

DEPLOY = """---
name: deploy
description: Deploys a service to staging.
---
# Deploy

1. Run `make deploy ENV=staging`.
2. Post the URL.
"""


@pytest.fixture
def ctx(ctx: WorkerContext) -> WorkerContext:
    return with_settings(ctx, command_harness="/bin/sh -c 'cat \"$OZ_PROMPT_FILE\"'", command_harness_format="text")


@pytest.fixture
def playbooks(github: FakeGitHub) -> None:
    github.add_repo(
        "acme",
        "playbooks",
        collaborators={"alice-gh": "read"},
        files={
            ".warp/skills/deploy/SKILL.md": DEPLOY,
            "teams/web/review/SKILL.md": "# Review\n\nRead every changed file.",
            ".agents/skills/linked/SKILL.md": "symlink:/etc/passwd",
        },
    )


def run_from(store: Store, person: Person, env_id: str, skill: str, prompt: str | None = None) -> str:
    request = RunAgentRequest(prompt=prompt, skill=skill, config={"environment_id": env_id})
    return runs.create(store, None, person.principal, request, agent_limit=AGENT_LIMIT).run.run_id


def prompt_seen(store: Store, run_id: str) -> str:
    with store.reader() as session:
        return "\n".join(e.text for e in transcript(session, run_id) if e.kind == EventKind.MESSAGE)


def final(store: Store, run_id: str):
    with store.reader() as session:
        return runs.load_run(session, run_id)


def test_a_skill_by_name_is_the_base_of_the_prompt(
    ctx: WorkerContext, runner_alice: Person, make_env, store: Store, playbooks
):
    run_id = run_from(store, runner_alice, make_env(), "acme/playbooks:deploy")
    assert run_job(ctx, run_id) == "SUCCEEDED", final(store, run_id).status_message
    seen = prompt_seen(store, run_id)
    assert seen.startswith("Follow the skill 'deploy':") and "make deploy ENV=staging" in seen
    assert "description: Deploys" not in seen  # the front matter is the index's, not the agent's
    assert final(store, run_id).config.name == "deploy"


def test_a_skill_by_path_then_the_request(ctx: WorkerContext, runner_alice: Person, make_env, store: Store, playbooks):
    run_id = run_from(store, runner_alice, make_env(), "acme/playbooks:teams/web/review/SKILL.md", "Only the API.")
    assert run_job(ctx, run_id) == "SUCCEEDED", final(store, run_id).status_message
    seen = prompt_seen(store, run_id)
    assert seen.index("Read every changed file.") < seen.index("Only the API.")


def test_repo_colon_name_reads_the_environments_repo(
    ctx: WorkerContext, runner_alice: Person, make_env, store: Store, github: FakeGitHub, remotes: Remotes
):
    remotes.create("acme", "api")
    github.add_repo(
        "acme", "api", collaborators={"alice-gh": "write"}, files={".claude/skills/triage/SKILL.md": "# Triage"}
    )
    run_id = run_from(store, runner_alice, make_env(repos=["acme/api"]), "api:triage")
    assert run_job(ctx, run_id) == "SUCCEEDED", final(store, run_id).status_message
    assert "# Triage" in prompt_seen(store, run_id)


NOT_FOUND = "resource_not_found"


@pytest.mark.parametrize(
    ("skill", "code", "said"),
    [
        (
            "acme/playbooks:release",
            NOT_FOUND,
            "no acme/playbooks:.warp/skills/release/SKILL.md, acme/playbooks:.agents",
        ),
        ("acme/playbooks:.agents/skills/linked/SKILL.md", NOT_FOUND, "is not a regular file"),
        ("web:deploy", NOT_FOUND, "not in the run's environment"),
        # A repo the person cannot read is their access to fix, as for the environment's repos.
        ("acme/secret-plans:deploy", "external_authentication_required", "acme/secret-plans"),
    ],
)
def test_a_skill_that_is_not_there_fails_the_run_saying_where_it_looked(
    skill: str, code: str, said: str, ctx: WorkerContext, runner_alice: Person, make_env, store: Store, playbooks
):
    run_id = run_from(store, runner_alice, make_env(), skill)
    assert run_job(ctx, run_id) == "FAILED"
    message = final(store, run_id).status_message
    assert message.error_code == code and said in message.message, message


def test_a_malformed_skill_spec_is_refused_when_asked(runner_alice: Person, store: Store):
    with pytest.raises(OzError, match="must look like owner/repo:skill-name"):
        runs.create(store, None, runner_alice.principal, RunAgentRequest(skill="deploy"), agent_limit=AGENT_LIMIT)
