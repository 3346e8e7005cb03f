"""Runs executed for real: a Docker container per run, repos cloned from bare remotes, the
``command`` harness running scripted agents, PRs opened on a fake GitHub."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import docker

from core import runs
from core.events import transcript
from core.models import RunState
from core.models.wire import FollowupRequest
from core.store import Store
from core.store.tables import ArtifactRow
from runner.context import WorkerContext
from runner.job import run_job
from runner.sandbox import containers_of
from tests.fakes.github import FakeGitHub
from tests.runner_support import Person, Remotes, git, with_settings
from tests.support.people import AGENT_LIMIT


def final(store: Store, run_id: str):
    with store.reader() as session:
        return runs.load_run(session, run_id)


def events_of(store: Store, run_id: str):
    with store.reader() as session:
        return transcript(session, run_id)


def artifacts_of(store: Store, run_id: str) -> list[ArtifactRow]:
    with store.reader() as session:
        return list(session.query(ArtifactRow).filter(ArtifactRow.run_id == run_id).order_by(ArtifactRow.artifact_type))


def test_success_opens_a_pull_request(
    ctx: WorkerContext,
    alice: Person,
    make_env,
    start_run,
    remotes: Remotes,
    github: FakeGitHub,
    store: Store,
    docker_client: docker.DockerClient,
):
    remotes.create("acme", "api")
    github.add_repo("acme", "api", collaborators={"alice-gh": "write"})
    run_id = start_run(
        alice.principal,
        make_env(repos=["acme/api"], setup=["echo ready > /tmp/setup-done"]),
        prompt="Fix the README typo\nplease",
    )

    assert run_job(ctx, run_id) == "SUCCEEDED"

    run = final(store, run_id)
    branch = f"oz/{run_id[:8]}-fix-the-readme-typo"
    assert github.pulls and github.pulls[0]["head"]["ref"] == branch
    pull = github.pulls[0]
    assert pull["base"]["ref"] == "main" and pull["title"] == "Fix the README typo"
    assert f"http://gateway.test/console/runs/{run_id}" in pull["body"]
    assert pull["user"]["login"] == "alice-gh"  # opened with the triggering person's token
    assert run.status_message.message.startswith("Updated README.md as asked.")
    assert pull["html_url"] in run.status_message.message
    # The branch really was pushed, with the agent as author and the person as co-author.
    assert branch in remotes.branches("acme", "api")
    assert "Agent note: Fix the README typo" in remotes.show("acme", "api", branch, "README.md")
    log = remotes.log("acme", "api", branch)
    assert log.startswith("Oz Agent <oz-agent@users.noreply.github.com>")
    assert "Co-authored-by: Alice Liddell <alice@example.com>" in log
    # Artifacts: the PR, and the file the agent left in .oz/artifacts.
    kinds = {a.artifact_type: a for a in artifacts_of(store, run_id)}
    assert kinds["PULL_REQUEST"].data == {"branch": branch, "url": pull["html_url"]}
    assert kinds["FILE"].content == f"report for {run_id}\n".encode()
    assert ".oz" not in remotes.show("acme", "api", branch, "")  # never committed
    # The transcript holds the typed steps; the run shows its timing.
    steps = [e.kind.value for e in events_of(store, run_id)]
    assert steps == ["status", "message", "command", "file_edit"]
    assert run.started_at is not None and run.finished_at is not None and run.run_time_seconds > 0
    assert run.session_link == f"http://gateway.test/console/runs/{run_id}"  # a page people can read
    # Nothing left behind.
    assert containers_of(docker_client, run_id) == []
    assert not (ctx.settings.effective_work_dir / run_id).exists()


def test_success_without_changes_opens_no_pr(
    ctx: WorkerContext, alice: Person, make_env, start_run, remotes: Remotes, github: FakeGitHub, store: Store
):
    remotes.create("acme", "api")
    github.add_repo("acme", "api", collaborators={"alice-gh": "write"})
    ctx = with_settings(ctx, command_harness="/bin/sh /opt/agents/noop.sh", command_harness_format="text")
    run_id = start_run(alice.principal, make_env(repos=["acme/api"]))
    assert run_job(ctx, run_id) == "SUCCEEDED"
    assert github.pulls == []
    message = final(store, run_id).status_message.message
    assert message == "Nothing needed changing.\nNo changes were made, so no pull request was opened."
    assert remotes.branches("acme", "api") == ["main"]


def test_setup_failure_names_the_command_and_stops(
    ctx: WorkerContext, alice: Person, make_env, start_run, store: Store, docker_client: docker.DockerClient
):
    env_id = make_env(setup=["echo preparing", "echo 'no such package' >&2; exit 7", "echo never"])
    run_id = start_run(alice.principal, env_id)
    assert run_job(ctx, run_id) == "FAILED"
    status = final(store, run_id).status_message
    assert status.error_code == "environment_setup_failed"
    assert status.message == "Setup command \"echo 'no such package' >&2; exit 7\" exited with 7 (no such package)"
    assert [e.text for e in events_of(store, run_id)] == [
        "Setup: echo preparing",
        "Setup: echo 'no such package' >&2; exit 7",
    ]
    assert containers_of(docker_client, run_id) == []


def test_missing_image(ctx: WorkerContext, alice: Person, make_env, start_run, store: Store):
    run_id = start_run(alice.principal, make_env(image="oz-test/not-built:1"))
    assert run_job(ctx, run_id) == "FAILED"
    status = final(store, run_id).status_message
    assert status.error_code == "environment_setup_failed"
    assert status.message.startswith("Docker image 'oz-test/not-built:1' not found")


def test_working_directory_must_exist(ctx: WorkerContext, alice: Person, make_env, start_run, store: Store):
    run_id = start_run(alice.principal, make_env(working_dir="/workspace/nope"))
    assert run_job(ctx, run_id) == "FAILED"
    status = final(store, run_id).status_message
    assert status.error_code == "environment_setup_failed"
    assert status.message == "Working directory not found (/workspace/nope does not exist in the container)"


def test_inaccessible_repo_fails_before_cloning(
    ctx: WorkerContext, alice: Person, make_env, start_run, remotes: Remotes, github: FakeGitHub, store: Store
):
    for name in ("api", "secret"):
        remotes.create("acme", name)
    github.add_repo("acme", "api", collaborators={"alice-gh": "write"})
    github.add_repo("acme", "secret", collaborators={"someone-else": "admin"})
    run_id = start_run(alice.principal, make_env(repos=["acme/api", "acme/secret"]))
    assert run_job(ctx, run_id) == "FAILED"
    status = final(store, run_id).status_message
    assert status.error_code == "external_authentication_required"
    assert status.message == (
        "User does not have access to the following repositories in the environment: "
        "acme/secret (inaccessible repos: acme/secret)"
    )
    assert not (ctx.settings.effective_work_dir / run_id).exists()


def test_person_without_github_authorization_is_asked_to_authorize(
    ctx: WorkerContext, store: Store, make_env, start_run, remotes: Remotes, github: FakeGitHub
):
    from core.accounts import create_account
    from core.models import Principal

    with store.session() as session:
        bob = create_account(session, "bob@example.com", "acme")
    remotes.create("acme", "api")
    run_id = start_run(Principal(kind="user", uid=bob.uid, team_uid=bob.team_uid), make_env(repos=["acme/api"]))
    assert run_job(ctx, run_id) == "FAILED"
    status = final(store, run_id).status_message
    assert status.error_code == "external_authentication_required"
    assert "User is not connected to GitHub" in status.message
    assert "http://gateway.test/auth/github" in status.message


def test_agent_crash_is_agent_process_failed(ctx: WorkerContext, alice: Person, make_env, start_run, store: Store):
    ctx = with_settings(ctx, command_harness="/bin/sh /opt/agents/crash.sh", command_harness_format="text")
    run_id = start_run(alice.principal, make_env())
    assert run_job(ctx, run_id) == "ERROR"
    status = final(store, run_id).status_message
    assert status.error_code == "agent_process_failed"
    assert "exit code 3" in status.message and "model quota exhausted" in status.message


def test_maximum_runtime_kills_the_container(
    ctx: WorkerContext, alice: Person, make_env, start_run, store: Store, docker_client: docker.DockerClient
):
    ctx = with_settings(
        ctx, command_harness="/bin/sh /opt/agents/sleep.sh", command_harness_format="text", max_runtime_seconds=3
    )
    run_id = start_run(alice.principal, make_env())
    started = time.monotonic()
    assert run_job(ctx, run_id) == "ERROR"
    assert time.monotonic() - started < 20
    status = final(store, run_id).status_message
    assert status.error_code == "infrastructure_timeout" and status.retryable is False
    assert containers_of(docker_client, run_id) == []


def wait_for_state(store: Store, run_id: str, state: RunState, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while final(store, run_id).state != state:
        if time.monotonic() > deadline:
            raise AssertionError(f"run never reached {state}; it is {final(store, run_id).state}")
        time.sleep(0.05)


def test_cancel_stops_the_container_within_five_seconds(
    ctx: WorkerContext, alice: Person, make_env, start_run, store: Store, docker_client: docker.DockerClient
):
    ctx = with_settings(ctx, command_harness="/bin/sh /opt/agents/sleep.sh", command_harness_format="text")
    run_id = start_run(alice.principal, make_env())
    result: list[str] = []
    worker = threading.Thread(target=lambda: result.append(run_job(ctx, run_id)))
    worker.start()
    wait_for_state(store, run_id, RunState.INPROGRESS)
    assert len(containers_of(docker_client, run_id)) == 1
    cancelled_at = time.monotonic()
    runs.cancel(store, ctx.queue, alice.principal, run_id)
    worker.join(30)
    assert result == ["CANCELLED"]
    assert containers_of(docker_client, run_id) == []
    assert time.monotonic() - cancelled_at < 5
    assert final(store, run_id).status_message.message == "Cancelled by alice@example.com"


def test_agent_key_runs_use_the_app_installation_token(
    ctx: WorkerContext, alice: Person, make_env, store: Store, remotes: Remotes, github: FakeGitHub
):
    from core.agents import default_agent
    from core.github_orgs import enable_org
    from core.models import Principal
    from core.models.wire import RunAgentRequest

    remotes.create("acme", "api")
    github.add_repo("acme", "api", installation_id=77)
    with store.session() as session:
        agent = default_agent(session, alice.principal.team_uid, AGENT_LIMIT)
        enable_org(session, alice.principal.team_uid, "acme")
    bot = Principal(kind="service_account", uid=agent.uid, team_uid=agent.team_uid)
    env_id = make_env(repos=["acme/api"])
    run_id = runs.create(
        store,
        None,
        bot,
        RunAgentRequest(prompt="nightly fix", config={"environment_id": env_id}),
        agent_limit=AGENT_LIMIT,
    ).run.run_id
    assert run_job(ctx, run_id) == "SUCCEEDED"
    assert github.pulls[0]["user"]["login"] == "oz-app[bot]"
    repo_calls = [
        caller
        for method, path, caller in github.calls
        if path.startswith("/repos/acme/api") and not path.endswith("/installation")
    ]
    assert repo_calls and all(c.installation_id == 77 and c.login is None for c in repo_calls)
    assert all(c.login != "alice-gh" for _m, _p, c in github.calls)
    log = remotes.log("acme", "api", github.pulls[0]["head"]["ref"])
    assert "Co-authored-by" not in log  # nobody to credit: an agent started it


def test_the_token_never_enters_the_container_or_the_transcript(
    ctx: WorkerContext,
    alice: Person,
    make_env,
    start_run,
    remotes: Remotes,
    github: FakeGitHub,
    store: Store,
    docker_client: docker.DockerClient,
    tmp_path: Path,
):
    remotes.create("acme", "api")
    github.add_repo("acme", "api", collaborators={"alice-gh": "write"})
    ctx = with_settings(ctx, command_harness="/bin/sh -c '/opt/agents/env.sh; sleep 2'", command_harness_format="text")
    run_id = start_run(alice.principal, make_env(repos=["acme/api"]))
    inspected: list[str] = []

    def inspect_while_running() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not inspected:
            for container in containers_of(docker_client, run_id):
                try:  # a short-lived helper (the clone's, say) may be gone between the list and the look
                    inspected.append(str(docker_client.api.inspect_container(container.id)))
                except docker.errors.NotFound:
                    continue
            time.sleep(0.05)

    spy = threading.Thread(target=inspect_while_running)
    spy.start()
    assert run_job(ctx, run_id) == "SUCCEEDED"
    spy.join()
    token = alice.github_token
    assert inspected, "the container was never seen running"
    assert all(token not in seen for seen in inspected)
    text = "\n".join(e.model_dump_json() for e in events_of(store, run_id))
    assert "OZ_RUN_ID=" + run_id in text  # the agent's environment really is in the transcript
    assert token not in text
    assert "extraheader" not in text.lower()  # nor the auth header in the repo's git config
    assert token not in final(store, run_id).model_dump_json()


def test_a_flood_of_output_is_capped_in_the_transcript_but_read_to_its_end(
    ctx: WorkerContext, alice: Person, make_env, start_run, store: Store
):
    flood = "i=0; while [ $i -lt 5000 ]; do echo step $i; i=$((i+1)); done; echo; echo All 5000 steps done."
    ctx = with_settings(
        ctx, command_harness=f"/bin/sh -c '{flood}'", command_harness_format="text", max_events_per_run=500
    )
    run_id = start_run(alice.principal, make_env())
    assert run_job(ctx, run_id) == "SUCCEEDED"
    steps = events_of(store, run_id)
    assert len(steps) == 501
    assert steps[-1].text == "The transcript stops here: 500 events kept"
    assert final(store, run_id).status_message.message == "All 5000 steps done."  # the parser saw every line


def test_a_follow_up_re_run_goes_on_from_its_branch_and_updates_its_pull_request(
    ctx: WorkerContext, alice: Person, make_env, start_run, remotes: Remotes, github: FakeGitHub, store: Store
):
    """The second execution clones the branch the first pushed, commits on top, pushes fast-forward
    and keeps the one PR — not a rejected push after the agent did its work, nor a second PR."""
    remotes.create("acme", "api")
    github.add_repo("acme", "api", collaborators={"alice-gh": "write"})
    run_id = start_run(alice.principal, make_env(repos=["acme/api"]), prompt="Fix the README typo")
    assert run_job(ctx, run_id) == "SUCCEEDED"
    branch = github.pulls[0]["head"]["ref"]
    bare = remotes.root / "acme" / "api.git"
    first = git("rev-parse", branch, cwd=bare).strip()

    runs.followup(store, None, alice.principal, run_id, FollowupRequest(message="Also mention the docs"))
    assert run_job(ctx, run_id) == "SUCCEEDED", final(store, run_id).status_message

    assert len(github.pulls) == 1  # the same PR, updated by the push
    readme = remotes.show("acme", "api", branch, "README.md")
    assert readme.count("Agent note: Fix the README typo") == 2  # the second edit on top of the first
    git("merge-base", "--is-ancestor", first, branch, cwd=bare)  # fast-forward: the first commit is kept
    assert git("rev-parse", branch, cwd=bare).strip() != first
    run = final(store, run_id)
    assert github.pulls[0]["html_url"] in run.status_message.message
    assert [a.data["url"] for a in artifacts_of(store, run_id) if a.artifact_type == "PULL_REQUEST"] == [
        github.pulls[0]["html_url"]
    ]


def test_a_run_shows_which_host_executed_it(
    ctx: WorkerContext, alice: Person, make_env, start_run, store: Store, gateway
):
    """Several worker hosts share one store: the API (and the console) say whose worker ran it."""
    import httpx

    from core.accounts import account_by_email
    from core.keys import create_key

    ctx = with_settings(ctx, host_name="worker-b.acme.internal")
    run_id = start_run(alice.principal, make_env())
    with store.session() as session:
        _record, key = create_key(session, account_by_email(session, alice.principal.email), "k")
    before = httpx.get(f"{gateway.api_url}/agent/runs/{run_id}", headers={"Authorization": f"Bearer {key}"}).json()
    assert before.get("worker_host") is None  # queued: no host has it yet
    assert run_job(ctx, run_id) == "SUCCEEDED"
    after = httpx.get(f"{gateway.api_url}/agent/runs/{run_id}", headers={"Authorization": f"Bearer {key}"}).json()
    assert after["worker_host"] == "worker-b.acme.internal"
    assert final(store, run_id).worker_host == "worker-b.acme.internal"
