"""The GitHub Actions step: read the event, decide whether it asks for a run, build the
prompt, start the run (remote: through the gateway's REST API with the agent key; local:
through a watcher the composition root provides), keep one sticky comment current, and
finish with outputs, a step summary and an exit code that says whether the run succeeded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from github import Auth, Github, GithubException
from github.Repository import Repository
from pydantic import BaseModel, Field, ValidationError

from bots.github.reporter import StickyComment, render
from bots.github.triggers import ActionInputs, Skip, Trigger, UnsupportedEvent, classify
from core import runs
from core.errors import code_of_problem_type
from core.models import RunItem, RunState
from core.models.wire import TERMINAL_STATES
from core.prompts import Conversation, Message, build_prompt
from core.run_items import pull_request_urls

WRITE_PERMISSIONS = {"admin", "maintain", "write"}


class RunRefused(Exception):
    """The gateway would not start the run (a spent budget, a missing environment, …): said
    on the issue and in the step's log, and the step fails."""

    def __init__(self, code: str, title: str, detail: str | None) -> None:
        super().__init__(f"{code}: {title}")
        self.code, self.title, self.detail = code, title, detail


MARKER_PREFIX = "<!-- oz-gateway-run:"


class ActionConfig(BaseModel):
    """The step's inputs (``OZ_*``, set by action.yml) and the runner's ``GITHUB_*`` facts."""

    api_key: str | None = Field(default=None, alias="OZ_API_KEY")
    gateway_url: str | None = Field(default=None, alias="OZ_GATEWAY_URL")
    environment_id: str | None = Field(default=None, alias="OZ_ENVIRONMENT_ID")
    mode: str | None = Field(default=None, alias="OZ_MODE")
    trigger_phrase: str = Field(default="@oz", alias="OZ_TRIGGER_PHRASE")
    assignee: str | None = Field(default=None, alias="OZ_ASSIGNEE")
    label: str | None = Field(default=None, alias="OZ_LABEL")
    prompt: str | None = Field(default=None, alias="OZ_PROMPT")
    model: str | None = Field(default=None, alias="OZ_MODEL")
    instructions: str | None = Field(default=None, alias="OZ_INSTRUCTIONS")
    poll_seconds: float = Field(default=5.0, alias="OZ_POLL_SECONDS")
    timeout_minutes: float = Field(default=60.0, alias="OZ_TIMEOUT_MINUTES")
    github_token: str | None = Field(default=None, alias="GITHUB_TOKEN")
    event_name: str = Field(alias="GITHUB_EVENT_NAME")
    event_path: Path = Field(alias="GITHUB_EVENT_PATH")
    repository: str = Field(alias="GITHUB_REPOSITORY")
    api_url: str = Field(default="https://api.github.com", alias="GITHUB_API_URL")
    server_url: str = Field(default="https://github.com", alias="GITHUB_SERVER_URL")
    ref_name: str | None = Field(default=None, alias="GITHUB_REF_NAME")
    run_id: str = Field(default="0", alias="GITHUB_RUN_ID")
    run_attempt: str = Field(default="1", alias="GITHUB_RUN_ATTEMPT")
    output_path: Path | None = Field(default=None, alias="GITHUB_OUTPUT")
    summary_path: Path | None = Field(default=None, alias="GITHUB_STEP_SUMMARY")

    @property
    def effective_mode(self) -> str:
        return self.mode or ("remote" if self.gateway_url else "local")

    @property
    def inputs(self) -> ActionInputs:
        return ActionInputs(self.trigger_phrase or "@oz", self.assignee or None, self.label or None, self.prompt)


@dataclass(frozen=True)
class RunRequest:
    prompt: str
    title: str
    trigger_url: str | None
    idempotency_key: str
    requester: str | None = None


RunWatcher = Callable[[RunRequest], Iterator[RunItem]]
"""Starts the run and yields its state as it changes; the last item is the finished run."""


class Console:
    """Workflow commands and step files (``::notice::``, ``GITHUB_OUTPUT`` …)."""

    def __init__(self, config: ActionConfig, echo: Callable[[str], None] = print) -> None:
        self.config = config
        self.echo = echo

    def mask(self, *values: str | None) -> None:
        for value in values:
            if value:
                self.echo(f"::add-mask::{value}")

    def command(self, kind: str, message: str) -> None:
        self.echo(f"::{kind}::{message.replace('%', '%25').replace(chr(13), '%0D').replace(chr(10), '%0A')}")

    def outputs(self, **values: str) -> None:
        if self.config.output_path:
            with open(self.config.output_path, "a") as handle:
                for key, value in values.items():
                    handle.write(f"{key}<<OZ_EOF\n{value}\nOZ_EOF\n" if "\n" in value else f"{key}={value}\n")

    def summary(self, markdown: str) -> None:
        if self.config.summary_path:
            with open(self.config.summary_path, "a") as handle:
                handle.write(markdown + "\n")


def _conversation(repo: Repository, trigger: Trigger, config: ActionConfig) -> Conversation | None:
    facts = [("Repository", repo.full_name), ("Ref", config.ref_name or "")]
    if trigger.number is None:
        return Conversation(kind="workflow run", facts=facts)
    issue = repo.get_issue(trigger.number)
    earlier = [
        Message(c.user.login, c.body or "")
        for c in issue.get_comments()
        if c.html_url != trigger.url and MARKER_PREFIX not in (c.body or "") and c.user.type != "Bot"
    ]
    if trigger.is_pull_request:
        pull = repo.get_pull(trigger.number)
        facts.append(("Branch", f"{pull.head.ref} → {pull.base.ref}"))
        facts.append(("Changed files", ", ".join(f.filename for f in pull.get_files())))
        if trigger.review_comment_id:
            comment = pull.get_review_comment(trigger.review_comment_id)
            facts.append(("Review comment on", f"{comment.path}\n{comment.diff_hunk}"))
    return Conversation(
        kind="pull request" if trigger.is_pull_request else "GitHub issue",
        title=issue.title,
        url=issue.html_url,
        opening=Message(issue.user.login, issue.body or ""),
        messages=earlier,
        facts=facts,
    )


def can_write(repo: Repository, login: str) -> bool:
    try:
        return repo.get_collaborator_permission(login) in WRITE_PERMISSIONS
    except GithubException:
        return False


def remote_watcher(config: ActionConfig) -> RunWatcher:
    """Create the run through the gateway's Oz API with the agent key, then poll it."""
    from oz_agent_sdk import APIStatusError, OzAPI

    def follow(request: RunRequest) -> Iterator[RunItem]:
        client = OzAPI(api_key=config.api_key, base_url=config.gateway_url, max_retries=3)
        agent_config = {
            k: v
            for k, v in (
                ("environment_id", config.environment_id),
                ("model_id", config.model),
                ("name", "github-action"),
            )
            if v
        }
        headers = {"Idempotency-Key": request.idempotency_key, "X-Oz-Source": "GITHUB_ACTION"}
        if request.trigger_url:
            headers["X-Oz-Trigger-Url"] = request.trigger_url
        try:
            created = client.agent.run(
                prompt=request.prompt, title=request.title, config=cast(Any, agent_config), extra_headers=headers
            )
        except APIStatusError as error:
            if error.status_code >= 500:
                raise
            problem = error.body if isinstance(error.body, dict) else {}
            code = code_of_problem_type(str(problem.get("type") or ""))
            raise RunRefused(
                code or str(error.status_code), str(problem.get("title") or error.message), problem.get("detail")
            ) from None
        deadline = time.monotonic() + config.timeout_minutes * 60
        while True:
            item = RunItem.model_validate(client.agent.runs.retrieve(created.run_id).model_dump(mode="json"))
            yield item
            if item.state in TERMINAL_STATES or time.monotonic() > deadline:
                return
            time.sleep(config.poll_seconds)

    return follow


def run_action(
    env: Mapping[str, str],
    local_watcher: Callable[[ActionConfig], RunWatcher] | None = None,
    echo: Callable[[str], None] = print,
) -> int:
    try:
        config = ActionConfig.model_validate(dict(env))
    except ValidationError as exc:
        echo(f"::error::the step is missing GitHub Actions context: {exc.errors()[0]['loc'][0]}")
        return 2
    console = Console(config, echo)
    console.mask(config.api_key, config.github_token)
    payload = json.loads(config.event_path.read_text())
    try:
        decision = classify(config.event_name, payload, config.inputs)
    except UnsupportedEvent as exc:
        console.command("error", str(exc))
        return 2
    if isinstance(decision, Skip):
        console.command("notice", f"Oz: nothing to do ({decision.reason})")
        console.outputs(state="SKIPPED", run_id="", pr_url="", session_link="")
        return 0
    if not config.github_token:
        console.command("error", "the github_token input is required to read the issue and comment on it")
        return 2
    gh = Github(auth=Auth.Token(config.github_token), base_url=config.api_url, retry=None, timeout=30)
    repo = gh.get_repo(config.repository)
    trigger = decision
    if trigger.author and not can_write(repo, trigger.author):
        if trigger.number is not None:
            repo.get_issue(trigger.number).create_comment(
                f"@{trigger.author} Oz only takes requests from people with write access to {repo.full_name}."
            )
        console.command("warning", f"Oz: {trigger.author} has no write access; no run was started")
        console.outputs(state="REFUSED", run_id="", pr_url="", session_link="")
        return 0

    if config.effective_mode == "remote":
        if not config.api_key or not config.gateway_url:
            console.command("error", "remote mode needs the warp_api_key and gateway_url inputs")
            return 2
        watcher = remote_watcher(config)
    elif local_watcher is not None:
        watcher = local_watcher(config)
    else:
        console.command("error", "local mode is not available in this entry point")
        return 2

    prompt = build_prompt(
        trigger.request,
        _conversation(repo, trigger, config),
        instructions=config.instructions,
        requester=trigger.author,
    )
    title = runs.title_of(trigger.request, "GitHub Actions run")
    request = RunRequest(
        prompt,
        title,
        trigger.url,
        f"gha-{config.repository}-{config.run_id}-{config.run_attempt}-{trigger.number or 0}",
        requester=trigger.author,
    )
    sticky: StickyComment | None = None
    run: RunItem | None = None
    try:
        for run in watcher(request):
            if sticky is None and trigger.number is not None:
                sticky = StickyComment(repo.get_issue(trigger.number), run.run_id)
            if sticky is not None:
                sticky.show(render(run))
    except RunRefused as refused:
        return _refused(console, repo, trigger, refused)
    assert run is not None
    return _finish(console, run)


def _refused(console: Console, repo: Repository, trigger: Trigger, refused: RunRefused) -> int:
    """No run was started: say why where the request was made, and fail the step."""
    reason = refused.title + (f": {refused.detail}" if refused.detail else "")
    if trigger.number is not None:
        who = f"@{trigger.author} " if trigger.author else ""
        repo.get_issue(trigger.number).create_comment(f"{who}Oz could not start a run. {reason} (`{refused.code}`)")
    console.command("error", f"Oz could not start a run ({refused.code}): {reason}")
    console.outputs(state="REFUSED", run_id="", pr_url="", session_link="")
    return 1


def _finish(console: Console, run: RunItem) -> int:
    pulls = pull_request_urls(run)
    console.outputs(
        run_id=run.run_id, state=run.state.value, pr_url=pulls[0] if pulls else "", session_link=run.session_link or ""
    )
    console.summary(render(run))
    if run.state == RunState.SUCCEEDED:
        console.command("notice", f"Oz finished: {pulls[0] if pulls else 'no pull request was needed'}")
        return 0
    reason = run.status_message.message if run.status_message else "no reason given"
    if run.state not in TERMINAL_STATES:
        console.command("error", f"Oz run {run.run_id} did not finish in time (it is {run.state.value})")
    else:
        console.command("error", f"Oz run {run.run_id} ended {run.state.value}: {reason}")
    return 1
