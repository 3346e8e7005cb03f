"""What the agent is told for a pull-request review comment: the request, the PR, its changed
files and the diff hunk commented on, earlier comments attributed — built with PyGithub
against the fake GitHub."""

from __future__ import annotations

from pathlib import Path

from github import Auth, Github

from bots.github.action import ActionConfig, _conversation
from bots.github.triggers import ActionInputs, classify
from core.prompts import build_prompt
from tests.fakes.github import FakeGitHub
from tests.support.github_action import REPO, fixture


def test_review_comment_prompt_has_files_and_hunk(github: FakeGitHub, action_repo: str, tmp_path: Path):
    payload = fixture("pull_request_review_comment.created")
    payload["comment"]["body"] = "@oz use a guard clause here"
    pull = payload["pull_request"]
    github.add_issue(
        REPO,
        {
            "number": pull["number"],
            "title": pull["title"],
            "body": pull["body"],
            "html_url": pull["html_url"],
            "user": pull["user"],
            "pull_request": {"url": pull["url"]},
        },
        comments=[{"user": {"login": "octocat"}, "body": "Looks mostly fine."}],
        files=["README.md", "docs/usage.md"],
    )
    github.review_comments[payload["comment"]["id"]] = payload["comment"]
    trigger = classify("pull_request_review_comment", payload, ActionInputs())
    assert trigger.request == "use a guard clause here" and trigger.is_pull_request
    config = ActionConfig.model_validate(
        {
            "GITHUB_EVENT_NAME": "pull_request_review_comment",
            "GITHUB_EVENT_PATH": str(tmp_path / "e.json"),
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_REF_NAME": "feature",
        }
    )
    repo = Github(auth=Auth.Token(action_repo), base_url=github.url).get_repo(REPO)
    prompt = build_prompt(trigger.request, _conversation(repo, trigger, config), requester=trigger.author)
    assert prompt.startswith("Request from Codertocat:\nuse a guard clause here")
    assert "Context: this request was made on a pull request." in prompt
    assert "Changed files: README.md, docs/usage.md" in prompt
    assert payload["comment"]["diff_hunk"].splitlines()[0] in prompt
    assert "octocat wrote:\n> Looks mostly fine." in prompt
    assert f"Title: {pull['title']}" in prompt


def test_long_conversations_keep_the_newest_messages():
    from core.prompts import Conversation, Message

    messages = [Message(f"user{i}", f"message {i} " + "x" * 300) for i in range(200)]
    prompt = build_prompt(
        "fix it", Conversation(kind="GitHub issue", title="T", opening=Message("op", "opening")), budget=5000
    )
    assert "opening" in prompt
    prompt = build_prompt(
        "fix it",
        Conversation(kind="GitHub issue", title="T", opening=Message("op", "opening"), messages=messages),
        budget=5000,
    )
    assert len(prompt) <= 5000
    assert "message 199" in prompt and "message 0 " not in prompt
    assert "earlier message(s) are left out" in prompt and "op wrote:\n> opening" in prompt
