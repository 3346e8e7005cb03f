"""Environment snapshots (``runner/snapshots.py``): a later run of an unchanged environment
starts from what its setup made, skips setup, and still lands its work as a pull request; a
new commit or another setup makes the next run cold again; a snapshot never keeps a secret;
the disk they use is capped, least recently used first; and an operator lists and clears them.
A copy of the snapshot's disk is made after each run, so that the next warm start only moves it."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import docker
import pytest

from core.accounts import create_account
from core.environments import update_environment
from core.managed_secrets import put_secret
from core.models import Principal
from core.store import Store
from runner.context import WorkerContext
from runner.disk import mounts_under
from runner.job import run_job
from runner.snapshots import SNAPSHOT_LABEL, Snapshots
from tests.fakes.github import FakeGitHub
from tests.runner.test_execution import events_of
from tests.runner_support import Person, Remotes, git, with_settings
from tests.support.cli import Cli

SETUP = [
    "mkdir -p /workspace/deps && cat /proc/sys/kernel/random/uuid > /workspace/deps/nonce",
    "echo installed > /opt/tool.txt",
]
"""What setup makes: a file in the workspace (beside the repo, like a virtualenv) and one in
the image's filesystem; the nonce tells one setup's result from another's."""

AGENT = (
    "/bin/sh -c 'echo nonce=$(cat /workspace/deps/nonce) tool=$(cat /opt/tool.txt) "
    'files=$(ls | tr "\\n" ","); echo "Agent was here" >> README.md\''
)
"""An agent that says what it found (setup's results, the repo's files) and edits the README."""

SECRET = "npm-t0ken-9f8e7d6c5b4a"


def transcript_text(store: Store, run_id: str) -> str:
    return "\n".join(e.text or "" for e in events_of(store, run_id))


def nonce(text: str) -> str:
    found = re.search(r"nonce=(\S+)", text)
    assert found, text
    return found.group(1)


def push_commit(remotes: Remotes, owner: str, name: str, path: str, content: str) -> None:
    """A new commit on ``main`` of the remote, as a teammate's push would make."""
    seed = remotes.root / "_seed" / owner / name
    (seed / path).write_text(content)
    git("add", path, cwd=seed)
    git("-c", "user.name=Teammate", "-c", "user.email=t@example.com", "commit", "-q", "-m", f"add {path}", cwd=seed)
    git("push", "-q", str(remotes.root / owner / f"{name}.git"), "HEAD:main", cwd=seed)


@pytest.fixture
def api_repo(remotes: Remotes, github: FakeGitHub) -> None:
    remotes.create("acme", "api")
    github.add_repo("acme", "api", collaborators={"alice-gh": "write"})


def snapshots_of(ctx: WorkerContext) -> Snapshots:
    return Snapshots(ctx.settings, ctx.docker)


def test_an_unchanged_environment_starts_from_its_snapshot_and_a_change_makes_it_cold(
    ctx: WorkerContext,
    alice: Person,
    make_env,
    start_run,
    remotes: Remotes,
    github: FakeGitHub,
    store: Store,
    api_repo: None,
    docker_client: docker.DockerClient,
):
    ctx = with_settings(ctx, command_harness=AGENT, command_harness_format="text")
    env_id = make_env(repos=["acme/api"], setup=SETUP)

    first = start_run(alice.principal, env_id)
    assert run_job(ctx, first) == "SUCCEEDED"
    cold = transcript_text(store, first)
    assert "Setup: " in cold and "tool=installed" in cold

    second = start_run(alice.principal, env_id)
    assert run_job(ctx, second) == "SUCCEEDED"
    warm = transcript_text(store, second)
    assert "Setup skipped: started from this environment's snapshot" in warm
    assert "Setup: " not in warm  # no setup command ran
    assert nonce(warm) == nonce(cold) and "tool=installed" in warm  # setup's results, workspace and image
    # The agent's work lands as before: its own pull request, from the commit it started at.
    assert len(github.pulls) == 2
    branch = github.pulls[1]["head"]["ref"]
    assert "Agent was here" in remotes.show("acme", "api", branch, "README.md")
    assert remotes.show("acme", "api", branch, "README.md").count("Agent was here") == 1

    [snapshot] = snapshots_of(ctx).all()
    assert snapshot.environment_uid == env_id and snapshot.made_by_run == first and snapshot.uses == 1
    # The warm run took the disk copy made after the first run; after it, the next one waits,
    # mounted; no run's own filesystem is left.
    [ready] = mounts_under(ctx.settings.effective_work_dir)
    assert ready.parent.name.startswith(f".ready-{env_id}-") and ready.parent.name.endswith(second)

    # A teammate pushes: the next run sees the new commit, so it is cold (setup runs again) and
    # its snapshot replaces the old one.
    push_commit(remotes, "acme", "api", "NEW.md", "new\n")
    third = start_run(alice.principal, env_id)
    assert run_job(ctx, third) == "SUCCEEDED"
    after_push = transcript_text(store, third)
    assert "Setup: " in after_push and "NEW.md" in after_push and nonce(after_push) != nonce(cold)
    [replaced] = snapshots_of(ctx).all()
    assert replaced.made_by_run == third and replaced.key != snapshot.key
    assert not docker_client.images.list(name=snapshot.image)  # the old image is gone

    # Another setup command: cold again.
    with store.session() as session:
        update_environment(session, alice.principal, env_id, add_setup_commands=["echo more >> /opt/tool.txt"])
    fourth = start_run(alice.principal, env_id)
    assert run_job(ctx, fourth) == "SUCCEEDED"
    assert "Setup: echo more" in transcript_text(store, fourth)
    fifth = start_run(alice.principal, env_id)
    assert run_job(ctx, fifth) == "SUCCEEDED"
    assert "Setup skipped" in transcript_text(store, fifth)
    assert "tool=installed more" in transcript_text(store, fifth)


@pytest.mark.parametrize(
    ("setup", "where"),
    [
        ("echo //registry.npmjs.org/:_authToken=$NPM_TOKEN > /root/.npmrc", "/root/.npmrc"),
        ("mkdir -p /workspace/deps && echo $NPM_TOKEN > /workspace/deps/token", "the workspace (workspace/deps/token)"),
        ("echo $NPM_TOKEN > /workspace/gone && sync && rm /workspace/gone", "a file since deleted"),
    ],
    ids=["image", "workspace", "deleted"],
)
def test_a_setup_that_leaves_a_secret_behind_is_not_kept(
    ctx: WorkerContext,
    alice: Person,
    make_env,
    start_run,
    store: Store,
    docker_client: docker.DockerClient,
    setup: str,
    where: str,
):
    with store.session() as session:
        put_secret(session, ctx.vault, alice.principal, "NPM_TOKEN", SECRET, "team")
    ctx = with_settings(ctx, command_harness="/bin/sh -c 'echo agent ran'", command_harness_format="text")
    env_id = make_env(setup=[setup])
    with store.session() as session:
        update_environment(session, alice.principal, env_id, add_secrets=["NPM_TOKEN"])

    first = start_run(alice.principal, env_id)
    assert run_job(ctx, first) == "SUCCEEDED"  # the run itself is unaffected
    text = transcript_text(store, first)
    assert "No snapshot kept: setup left the value of a secret in" in text and where in text
    assert SECRET not in text
    assert snapshots_of(ctx).all() == []
    assert not docker_client.images.list(filters={"label": f"{SNAPSHOT_LABEL}={env_id}"})

    second = start_run(alice.principal, env_id)  # cold again, and not tried again for the same inputs
    assert run_job(ctx, second) == "SUCCEEDED"
    again = transcript_text(store, second)
    assert "Setup: " in again and "No snapshot kept" not in again
    assert snapshots_of(ctx).all() == []


def test_a_snapshot_holds_neither_secret_values_nor_the_token(
    ctx: WorkerContext,
    alice: Person,
    make_env,
    start_run,
    store: Store,
    api_repo: None,
    docker_client: docker.DockerClient,
):
    """Setup that *uses* a secret (and the clone that used the GitHub token) is kept: neither
    value is in the image's configuration or in any byte of the snapshot on disk."""
    with store.session() as session:
        put_secret(session, ctx.vault, alice.principal, "NPM_TOKEN", SECRET, "team")
    ctx = with_settings(ctx, command_harness="/bin/sh -c 'echo token=$NPM_TOKEN'", command_harness_format="text")
    env_id = make_env(repos=["acme/api"], setup=['test -n "$NPM_TOKEN" && echo used > /opt/used'])
    with store.session() as session:
        update_environment(session, alice.principal, env_id, add_secrets=["NPM_TOKEN"])
    first = start_run(alice.principal, env_id)
    assert run_job(ctx, first) == "SUCCEEDED"
    [snapshot] = snapshots_of(ctx).all()
    image = docker_client.api.inspect_image(snapshot.image)
    assert SECRET not in str(image) and alice.github_token not in str(image)
    assert not image["Config"]["Labels"].get("oz.run_id")  # not the run's: the sweeps never take it for one
    for directory, _dirs, files in os.walk(snapshots_of(ctx).directory(env_id)):
        for name in files:
            data = Path(directory, name).read_bytes()
            assert SECRET.encode() not in data and alice.github_token.encode() not in data, name

    second = start_run(alice.principal, env_id)  # warm, and its agent still gets the secret
    assert run_job(ctx, second) == "SUCCEEDED"
    assert "Setup skipped" in transcript_text(store, second)
    assert "token=********" in transcript_text(store, second)


def test_snapshots_past_the_limit_are_evicted_least_recently_used_first(
    ctx: WorkerContext, alice: Person, make_env, start_run, store: Store, docker_client: docker.DockerClient
):
    ctx = with_settings(ctx, command_harness="/bin/sh -c 'echo agent ran'", command_harness_format="text")
    older = make_env(setup=["echo a > /opt/a"])
    newer = make_env(setup=["echo b > /opt/b"])
    assert run_job(ctx, start_run(alice.principal, older)) == "SUCCEEDED"
    [first] = snapshots_of(ctx).all()
    # Room for one and a half: keeping the second evicts the first.
    tight = with_settings(ctx, snapshot_limit=int(first.bytes * 1.5))
    assert run_job(tight, start_run(alice.principal, newer)) == "SUCCEEDED"
    assert [s.environment_uid for s in snapshots_of(tight).all()] == [newer]
    assert not docker_client.images.list(name=first.image)
    # Off: no snapshot is made or used.
    off = with_settings(ctx, snapshot_limit=0)
    run_id = start_run(alice.principal, newer)
    assert run_job(off, run_id) == "SUCCEEDED"
    assert "Setup: " in transcript_text(store, run_id)


def test_an_operator_lists_and_clears_snapshots(
    ctx: WorkerContext, alice: Person, make_env, start_run, store: Store, tmp_path: Path
):
    ctx = with_settings(ctx, command_harness="/bin/sh -c 'echo agent ran'", command_harness_format="text")
    env_id = make_env(setup=["echo a > /opt/a"])
    assert run_job(ctx, start_run(alice.principal, env_id)) == "SUCCEEDED"
    cli = Cli(tmp_path / "cli")
    cli.env["OZGW_WORK_DIR"] = str(ctx.settings.effective_work_dir)
    listed = cli("--output-format", "json", "environment", "snapshot", "list").stdout
    assert env_id in listed and '"uses": 0' in listed
    assert "give an environment id" in cli("environment", "snapshot", "clear", ok=False).stderr
    cleared = cli("--output-format", "json", "environment", "snapshot", "clear", env_id).stdout
    assert env_id in cleared
    assert snapshots_of(ctx).all() == []
    assert mounts_under(ctx.settings.effective_work_dir) == []  # its ready disk went with it
    run_id = start_run(alice.principal, env_id)
    assert run_job(ctx, run_id) == "SUCCEEDED"
    assert "Setup: " in transcript_text(store, run_id)  # cold after the clear


def test_two_warm_runs_at_once_share_one_snapshot(ctx: WorkerContext, alice: Person, make_env, start_run, store: Store):
    """One takes the ready disk, the other copies the snapshot's: both start warm, with the same
    setup result, and neither sees the other's work."""
    ctx = with_settings(
        ctx,
        command_harness="/bin/sh -c 'echo nonce=$(cat /workspace/deps/nonce); echo $OZ_RUN_ID > /workspace/deps/mine; "
        "sleep 1; echo mine=$(cat /workspace/deps/mine)'",
        command_harness_format="text",
    )
    env_id = make_env(setup=SETUP)
    first = start_run(alice.principal, env_id)
    assert run_job(ctx, first) == "SUCCEEDED"
    pair = [start_run(alice.principal, env_id) for _ in range(2)]
    results: dict[str, str] = {}
    threads = [threading.Thread(target=lambda r=r: results.update({r: run_job(ctx, r)})) for r in pair]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert results == {r: "SUCCEEDED" for r in pair}
    texts = [transcript_text(store, r) for r in pair]
    assert all("Setup skipped" in t and nonce(t) == nonce(transcript_text(store, first)) for t in texts)
    assert all(f"mine={r}" in t for r, t in zip(pair, texts, strict=True))  # each its own disk
    assert snapshots_of(ctx).all()[0].uses == 2


def test_a_read_only_root_starts_warm_with_what_setup_left_in_its_homes(
    ctx: WorkerContext, alice: Person, make_env, start_run, store: Store
):
    ctx = with_settings(ctx, command_harness="/bin/sh -c 'cat /root/made-by-setup'", command_harness_format="text")
    env_id = make_env(setup=["cat /proc/sys/kernel/random/uuid > /root/made-by-setup"], read_only_root=True)
    first, second = start_run(alice.principal, env_id), start_run(alice.principal, env_id)
    assert run_job(ctx, first) == "SUCCEEDED"
    assert run_job(ctx, second) == "SUCCEEDED"
    made = [line for line in transcript_text(store, first).splitlines() if re.fullmatch(r"[0-9a-f-]{36}", line)]
    assert made and "Setup skipped" in transcript_text(store, second)
    assert made[0] in transcript_text(store, second)


def test_a_persons_own_secret_makes_a_snapshot_no_teammate_starts_from(
    ctx: WorkerContext, alice: Person, make_env, start_run, store: Store
):
    """Setup that ran with Alice's own NPM_TOKEN may have fetched what only she may: Bob's run,
    with the team's NPM_TOKEN, does not start from it."""
    with store.session() as session:
        bob = create_account(session, "bob@example.com", "acme", display_name="Bob")
        put_secret(session, ctx.vault, alice.principal, "NPM_TOKEN", "alice-own-token-1", "personal")
        put_secret(session, ctx.vault, alice.principal, "NPM_TOKEN", "team-shared-token-2", "team")
    bob_principal = Principal(kind="user", uid=bob.uid, team_uid=bob.team_uid, email=bob.email)
    ctx = with_settings(ctx, command_harness="/bin/sh -c 'echo agent ran'", command_harness_format="text")
    env_id = make_env(setup=["echo fetched > /opt/private-package"])
    with store.session() as session:
        update_environment(session, alice.principal, env_id, add_secrets=["NPM_TOKEN"])
    assert run_job(ctx, start_run(alice.principal, env_id)) == "SUCCEEDED"
    bobs = start_run(bob_principal, env_id)
    assert run_job(ctx, bobs) == "SUCCEEDED"
    assert "Setup: " in transcript_text(store, bobs) and "Setup skipped" not in transcript_text(store, bobs)
    again = start_run(bob_principal, env_id)  # Bob's own inputs now have their snapshot
    assert run_job(ctx, again) == "SUCCEEDED"
    assert "Setup skipped" in transcript_text(store, again)
