"""The real Claude Code, Codex CLI and Gemini CLI (the pinned versions in the agent image) run
through the runner end to end against scripted model servers on loopback: the CLI reads a
file, edits it, runs a command as the non-root ``agent`` user, answers — and the PR carries the
edit, the transcript the CLI's steps, the run its token usage."""

from __future__ import annotations

import base64
import json
import threading
import time

import pytest

from core import runs
from core.events import EventKind, transcript
from core.models.wire import FollowupRequest, RunAgentRequest
from core.store import Store
from runner.context import WorkerContext
from runner.job import run_job
from tests.fakes.github import FakeGitHub
from tests.real_agents import CLIS, readme_script
from tests.runner_support import Person, Remotes, with_settings
from tests.support.people import AGENT_LIMIT

pytestmark = pytest.mark.timeout(240)


def start(store: Store, person: Person, env_id: str, cli: str, prompt: str = "Fix the README", **config) -> str:
    request = RunAgentRequest(
        prompt=prompt,
        config={"environment_id": env_id, "harness": {"type": cli, "model_id": CLIS[cli].model}, **config},
    )
    return runs.create(store, None, person.principal, request, agent_limit=AGENT_LIMIT).run.run_id


def final(store: Store, run_id: str):
    with store.reader() as session:
        return runs.load_run(session, run_id)


@pytest.fixture
def ctx(ctx: WorkerContext) -> WorkerContext:
    """The runner's context with room for a Node.js CLI (the busybox tests make do with 256 MB),
    and CLIs that give up on a failing model API after one retry."""
    return with_settings(ctx, container_memory="2g", agent_model_retries=1, egress_allow_private=True)


@pytest.fixture
def repo(remotes: Remotes, github: FakeGitHub) -> str:
    remotes.create("acme", "api")
    github.add_repo("acme", "api", collaborators={"alice-gh": "write"})
    return "acme/api"


@pytest.mark.parametrize("root", ["writable", "read-only"])
@pytest.mark.parametrize("cli", list(CLIS))
def test_the_cli_edits_runs_a_command_and_its_work_becomes_a_pr(
    cli: str,
    root: str,
    ctx: WorkerContext,
    alice: Person,
    store: Store,
    github: FakeGitHub,
    remotes: Remotes,
    repo: str,
    model_api,
    model_env,
):
    fake = model_api(cli, readme_script(cli))
    prompt = "Fix the README\n" + "Context from a long Slack thread. " * 6000  # ~200 KiB: more than argv allows
    env_id = model_env(alice.principal, ctx.settings, cli, fake, read_only_root=root == "read-only")
    run_id = start(store, alice, env_id, cli, prompt)

    assert run_job(ctx, run_id) == "SUCCEEDED", final(store, run_id).status_message
    assert fake.problems == []

    run = final(store, run_id)
    assert run.status_message.message.startswith("Updated README.md.\nPull request: ")
    branch = github.pulls[0]["head"]["ref"]
    assert remotes.show("acme", "api", branch, "README.md") == f"# api\n\nEdited by {cli}.\n"
    # The model saw the whole prompt (it reached the CLI on stdin), under the model asked for.
    main = fake.main_requests
    sent = json.dumps(main[0]["body"])
    assert "Fix the README" in sent and sent.count("Context from a long Slack thread.") == 6000
    assert CLIS[cli].model in str(main[0]["path"]) + str(main[0]["body"].get("model"))
    # The transcript holds the CLI's real steps.
    with store.reader() as session:
        steps = transcript(session, run_id)
    commands = [e.command for e in steps if e.kind == EventKind.COMMAND]
    assert any("id -un; ls" in c for c in commands), commands
    assert any(e.kind == EventKind.FILE_EDIT and e.path.endswith("README.md") for e in steps)
    assert steps[-1].kind == EventKind.MESSAGE and steps[-1].text == "Updated README.md."
    # Usage, as the CLI reported it.
    assert run.usage and sum(u.input_tokens for u in run.usage) >= 1200 * 4
    assert all(u.output_tokens > 0 for u in run.usage)


@pytest.mark.parametrize("cli", list(CLIS))
def test_a_rejected_model_key_fails_with_the_clis_own_message(
    cli: str, ctx: WorkerContext, alice: Person, store: Store, github: FakeGitHub, repo: str, model_api, model_env
):
    fake = model_api(cli, readme_script(cli))
    run_id = start(store, alice, model_env(alice.principal, ctx.settings, cli, fake, key="wrong-key"), cli)

    assert run_job(ctx, run_id) == "FAILED"

    status = final(store, run_id).status_message
    assert status.error_code == "external_authentication_required", status
    assert status.message.startswith("The model API refused the agent's key (")
    assert "wrong-key" not in status.message  # the key itself is masked everywhere
    assert github.pulls == []


@pytest.mark.parametrize("cli", list(CLIS))
def test_a_model_api_that_stays_overloaded_ends_in_a_clear_retryable_error(
    cli: str, ctx: WorkerContext, alice: Person, store: Store, repo: str, model_api, model_env
):
    fake = model_api(cli, readme_script(cli))
    overloaded = {
        "claude": {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        "codex": {"error": {"message": "Rate limit reached", "type": "rate_limit_exceeded", "code": None}},
        "gemini": {"error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}},
    }[cli]
    fake.fail(529 if cli == "claude" else 429, overloaded, **{"retry-after": "0", "retry-after-ms": "1"})
    run_id = start(store, alice, model_env(alice.principal, ctx.settings, cli, fake), cli)

    assert run_job(ctx, run_id) in ("ERROR", "FAILED")

    status = final(store, run_id).status_message
    assert status.error_code == "resource_unavailable", status
    assert status.retryable is True
    assert len(fake.requests) > 1  # the CLI retried before giving up


@pytest.mark.parametrize("cli", list(CLIS))
def test_a_cli_missing_from_the_image_says_how_to_add_it(
    cli: str, ctx: WorkerContext, alice: Person, store: Store, model_api, model_env, test_image: str
):
    fake = model_api(cli, readme_script(cli))
    run_id = start(store, alice, model_env(alice.principal, ctx.settings, cli, fake, repos=[], image=test_image), cli)

    assert run_job(ctx, run_id) == "FAILED"

    status = final(store, run_id).status_message
    assert status.error_code == "environment_setup_failed"
    assert status.message.startswith(f"The image has no `{cli}` for the {cli} harness (add it to the image: npm ")
    assert fake.requests == []


def containers_created(docker_client, run_id: str, since: float) -> list[dict]:
    """Every container the Docker engine created for the run since ``since`` (its event log)."""
    events = docker_client.events(
        since=int(since),
        until=int(time.time()) + 1,
        decode=True,
        filters={"type": "container", "event": "create", "label": f"oz.run_id={run_id}"},
    )
    return list(events)


@pytest.mark.parametrize("cli", list(CLIS))
def test_without_a_model_key_the_run_fails_before_any_container_starts(
    cli: str, ctx: WorkerContext, alice: Person, store: Store, model_api, model_env, docker_client
):
    fake = model_api(cli, readme_script(cli))
    run_id = start(store, alice, model_env(alice.principal, ctx.settings, cli, fake, repos=[], key=""), cli)
    began = time.time() - 1

    assert run_job(ctx, run_id) == "FAILED"

    status = final(store, run_id).status_message
    assert status.error_code == "environment_setup_failed"
    key = CLIS[cli].key_secret
    assert status.message == (
        f"The {cli} harness needs a model key: the managed secret {key} is not defined "
        f"(create it with `oz-gateway secret create {key} --team` (or --personal); "
        "only this run's container receives it)"
    )
    assert containers_created(docker_client, run_id, began) == []
    assert fake.requests == []


@pytest.mark.parametrize("cli", list(CLIS))
def test_a_cli_that_fails_is_never_reported_as_a_success(
    cli: str, ctx: WorkerContext, alice: Person, store: Store, github: FakeGitHub, repo: str, model_api, model_env
):
    fake = model_api(cli, readme_script(cli))
    refusal = {
        "claude": {"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is malformed"}},
        "codex": {"error": {"message": "prompt is malformed", "type": "invalid_request_error", "code": None}},
        "gemini": {"error": {"code": 400, "message": "prompt is malformed", "status": "INVALID_ARGUMENT"}},
    }[cli]
    fake.fail(400, refusal)
    run_id = start(store, alice, model_env(alice.principal, ctx.settings, cli, fake), cli)

    assert run_job(ctx, run_id) == "ERROR"

    status = final(store, run_id).status_message
    assert status.error_code == "agent_process_failed", status
    assert "malformed" in status.message
    assert github.pulls == []


@pytest.mark.parametrize("cli", list(CLIS))
def test_a_follow_up_reaches_the_working_agent(
    cli: str, ctx: WorkerContext, alice: Person, store: Store, github: FakeGitHub, repo: str, model_api, model_env
):
    followup = "Also mention the changelog, please."
    fake = model_api(cli, readme_script(cli, followup=followup))
    fake.hold_step = 2  # the model "thinks" about the shell step until the test lets it go
    run_id = start(store, alice, model_env(alice.principal, ctx.settings, cli, fake), cli)
    result: list[str] = []
    worker = threading.Thread(target=lambda: result.append(run_job(ctx, run_id)))
    worker.start()
    try:
        assert fake.arrived.wait(120), "the agent never got to the shell step"
        sent = time.monotonic()
        runs.followup(store, None, alice.principal, run_id, FollowupRequest(message=followup))
        note = wait_for_event(store, run_id, "Follow-up")
        delivered_in = time.monotonic() - sent
    finally:
        fake.release.set()
        worker.join(180)
    assert result == ["SUCCEEDED"], final(store, run_id).status_message
    assert delivered_in < 5
    if cli == "claude":  # into the running CLI's input, answered in the same session
        assert note.startswith("Follow-up delivered to the agent: ")
    else:  # the CLI takes no input mid-run: the next turn of the same session
        assert note.startswith("Follow-up received; the agent takes it when its current turn ends: ")
    run = final(store, run_id)
    assert run.status_message.message.startswith(f"Updated README.md. Follow-up handled: {followup}")
    assert run.attempt == 0  # one execution, not a re-run
    assert len(github.pulls) == 1


def wait_for_event(store: Store, run_id: str, prefix: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with store.reader() as session:
            for event in transcript(session, run_id):
                if event.kind == EventKind.STATUS and (event.text or "").startswith(prefix):
                    return event.text
        time.sleep(0.1)
    raise AssertionError(f"no {prefix!r} event")


GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@pytest.mark.parametrize("cli", list(CLIS))
def test_attached_files_are_in_the_workspace_and_images_reach_the_model(
    cli: str,
    ctx: WorkerContext,
    alice: Person,
    store: Store,
    github: FakeGitHub,
    remotes: Remotes,
    repo: str,
    model_api,
    model_env,
):
    """``attachments`` on ``POST /agent/run``: each file at ``/workspace/.oz/attachments/`` (the
    agent lists them), the prompt says where; Claude Code gets the image in its first message
    and Codex with ``--image``, so the model sees it."""
    script = readme_script(cli, command="ls /workspace/.oz/attachments", expect="diagram.png\nsketch.gif")
    fake = model_api(cli, script)
    env_id = model_env(alice.principal, ctx.settings, cli, fake)
    request = RunAgentRequest(
        prompt="Fix the README as the diagram shows",
        config={"environment_id": env_id, "harness": {"type": cli, "model_id": CLIS[cli].model}},
        attachments=[
            {"file_name": "diagram.png", "mime_type": "image/png", "data": base64.b64encode(PNG).decode()},
            {"file_name": "sketch.gif", "mime_type": "image/gif", "data": base64.b64encode(GIF).decode()},
        ],
    )
    run_id = runs.create(store, None, alice.principal, request, agent_limit=AGENT_LIMIT).run.run_id

    assert run_job(ctx, run_id) == "SUCCEEDED", final(store, run_id).status_message
    assert fake.problems == []
    first = json.dumps(fake.main_requests[0]["body"])
    assert "/workspace/.oz/attachments/diagram.png (image/png)" in first  # the prompt says where
    if cli in ("claude", "codex"):
        assert base64.b64encode(PNG).decode() in first  # the image itself, for the model to see
    branch = github.pulls[0]["head"]["ref"]
    assert ".oz" not in remotes.show("acme", "api", branch, "")  # attachments are never committed


def test_harness_auth_secrets_names_the_secret_that_is_the_model_key(
    ctx: WorkerContext, alice: Person, store: Store, github: FakeGitHub, repo: str, model_api, model_env
):
    """``harness_auth_secrets.claude_auth_secret_name``: the team's key under a name of its own
    reaches Claude Code as its key (the model API accepts it), with no ANTHROPIC_API_KEY secret."""
    from core import managed_secrets
    from core.vault import Vault

    fake = model_api("claude", readme_script("claude"))
    env_id = model_env(alice.principal, ctx.settings, "claude", fake, key="")  # no secret under the usual name
    with store.session() as session:
        vault = Vault.from_settings(ctx.settings)
        managed_secrets.put_secret(session, vault, alice.principal, "PLATFORM_CLAUDE_KEY", fake.api_key, "team")
    run_id = start(
        store, alice, env_id, "claude", harness_auth_secrets={"claude_auth_secret_name": "PLATFORM_CLAUDE_KEY"}
    )
    assert run_job(ctx, run_id) == "SUCCEEDED", final(store, run_id).status_message
    assert fake.problems == [] and len(github.pulls) == 1
