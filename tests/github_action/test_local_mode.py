"""Local mode: no gateway; the step runs the agent right on the Actions runner with the
worker's own code, pushing and opening the PR with the workflow's GITHUB_TOKEN."""

from __future__ import annotations

from tests.fakes.github import FakeGitHub
from tests.runner_support import Remotes, local_runner_env
from tests.support.github_action import REPO, fixture


def local_env(token: str, test_image: str, remotes: Remotes, agent: str = "edit.sh") -> dict[str, str]:
    env = {
        "OZ_MODE": "local",
        "GITHUB_TOKEN": token,
        "GITHUB_REF_NAME": "main",
        "OZGW_GITHUB_CLONE_URL": remotes.url,
        **local_runner_env(test_image, agent),
    }
    env["OZGW_COMMAND_HARNESS_FORMAT"] = "claude" if agent == "edit.sh" else "text"
    return env


def test_workflow_dispatch_prompt_runs_locally_and_opens_a_pr(
    github: FakeGitHub, action_repo: str, test_image: str, remotes: Remotes, run_step
):
    payload = fixture("workflow_dispatch")
    payload["inputs"] = {"prompt": "Tidy up the README wording"}
    step = run_step("workflow_dispatch", payload, local_env(action_repo, test_image, remotes))
    assert step.code == 0, step.stdout
    assert step.outputs["state"] == "SUCCEEDED"
    pull = github.pulls[0]
    assert step.outputs["pr_url"] == pull["html_url"]
    assert pull["user"]["login"] == "actions-bot"  # pushed and opened with GITHUB_TOKEN
    assert pull["title"] == "Tidy up the README wording"
    assert pull["head"]["ref"] in remotes.branches("Codertocat", "Hello-World")
    assert github.comments_on(REPO, 1)[-1]["user"]["login"] == "octocat"  # no issue to comment on
    assert "Oz finished" in step.summary and pull["html_url"] in step.summary
    assert f"::add-mask::{action_repo}" in step.stdout


def test_workflow_dispatch_without_a_prompt_is_a_notice(action_repo: str, test_image: str, remotes: Remotes, run_step):
    step = run_step("workflow_dispatch", fixture("workflow_dispatch"), local_env(action_repo, test_image, remotes))
    assert step.code == 0 and step.outputs["state"] == "SKIPPED"
    assert "workflow_dispatch needs a `prompt` input" in step.stdout


def test_label_trigger_in_local_mode_reports_on_the_issue(
    github: FakeGitHub, action_repo: str, test_image: str, remotes: Remotes, run_step
):
    payload = fixture("issues.labeled")
    payload["sender"]["login"] = "Codertocat"
    env = {**local_env(action_repo, test_image, remotes, agent="noop.sh"), "OZ_LABEL": "bug"}
    step = run_step("issues", payload, env)
    assert step.code == 0, step.stdout
    assert step.outputs["state"] == "SUCCEEDED" and step.outputs["pr_url"] == ""
    ours = [c for c in github.comments_on(REPO, 1) if "oz-gateway-run" in c["body"]]
    assert len(ours) == 1 and "No changes were made" in ours[0]["body"]
    other_label = {**env, "OZ_LABEL": "enhancement"}
    assert run_step("issues", payload, other_label).outputs["state"] == "SKIPPED"
