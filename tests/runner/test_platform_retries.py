"""A retryable platform error before the agent starts (here: GitHub not answering while the run
checks its repos) is tried again with a doubling wait — the run goes back to the queue saying
it is retrying — and ends ``ERROR`` only after ``OZGW_PLATFORM_RETRIES``; once the agent has
started, nothing is retried (it could redo the agent's work)."""

from __future__ import annotations

import threading

from core import runs
from core.events import EventKind, transcript
from core.store import Store
from runner.context import WorkerContext
from runner.job import run_job
from tests.fakes.github import FakeGitHub
from tests.runner_support import Person, Remotes, with_settings


def the_run(store: Store, run_id: str):
    with store.reader() as session:
        return runs.load_run(session, run_id)


def quick(ctx: WorkerContext) -> WorkerContext:
    return with_settings(ctx, outbound_timeout_seconds=1, platform_retries=2, platform_retry_seconds=0.1)


def test_github_not_answering_before_the_agent_is_retried_then_the_run_succeeds(
    ctx: WorkerContext, alice: Person, make_env, start_run, remotes: Remotes, github: FakeGitHub, store: Store
):
    remotes.create("acme", "api")
    github.add_repo("acme", "api", collaborators={"alice-gh": "write"})
    run_id = start_run(alice.principal, make_env(repos=["acme/api"]))
    github.hold("/repos/acme/api")  # GitHub hangs on the access check

    assert run_job(quick(ctx), run_id) == "QUEUED"
    run = the_run(store, run_id)
    assert run.status_message.message.startswith("Retrying (1 of 2) after: GitHub did not answer")
    with store.reader() as session:
        notes = [e.text for e in transcript(session, run_id) if e.kind == EventKind.STATUS]
    assert any(n.startswith("Retrying in 0.1 s (1 of 2)") for n in notes), notes

    github.release.set()  # GitHub is back
    assert run_job(quick(ctx), run_id) == "SUCCEEDED", the_run(store, run_id).status_message
    assert len(github.pulls) == 1


def test_retries_run_out_and_the_run_ends_in_error(
    ctx: WorkerContext, alice: Person, make_env, start_run, remotes: Remotes, github: FakeGitHub, store: Store
):
    remotes.create("acme", "api")
    github.add_repo("acme", "api", collaborators={"alice-gh": "write"})
    run_id = start_run(alice.principal, make_env(repos=["acme/api"]))
    github.hold("/repos/acme/api")

    states = [run_job(quick(ctx), run_id) for _ in range(3)]
    assert states == ["QUEUED", "QUEUED", "ERROR"]
    status = the_run(store, run_id).status_message
    assert status.error_code == "resource_unavailable" and status.retryable
    github.release.set()


def test_after_the_agent_only_the_safe_steps_are_retried_and_its_work_is_kept(
    ctx: WorkerContext, alice: Person, make_env, start_run, remotes: Remotes, github: FakeGitHub, store: Store
):
    """GitHub hangs when the PR is opened, then comes back: the PR step (find or open, safe to
    repeat) is tried again in place — the agent is not run again and the work is not lost."""
    remotes.create("acme", "api")
    github.add_repo("acme", "api", collaborators={"alice-gh": "write"})
    run_id = start_run(alice.principal, make_env(repos=["acme/api"]))
    github.hold("/pulls")
    back = threading.Timer(1.5, github.release.set)  # after the first try timed out
    back.start()
    assert run_job(with_settings(quick(ctx), platform_retry_seconds=1.0), run_id) == "SUCCEEDED"
    back.join()
    assert len(github.pulls) == 1
    with store.reader() as session:
        steps = transcript(session, run_id)
    assert len([e for e in steps if e.kind == EventKind.MESSAGE and "Reading the task" in (e.text or "")]) == 1


def test_nothing_is_retried_once_the_agent_has_started(
    ctx: WorkerContext, alice: Person, make_env, start_run, remotes: Remotes, github: FakeGitHub, store: Store
):
    remotes.create("acme", "api")
    github.add_repo("acme", "api", collaborators={"alice-gh": "write"})
    run_id = start_run(alice.principal, make_env(repos=["acme/api"]))
    github.hold("/pulls")  # GitHub hangs whenever the finished work's PR is looked for or opened

    assert run_job(quick(ctx), run_id) == "ERROR"  # the PR step's retries ran out; the agent never ran again
    assert the_run(store, run_id).status_message.error_code == "resource_unavailable"
    github.release.set()
