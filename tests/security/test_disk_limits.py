"""A run cannot fill the host's disk: its workspace is a filesystem of its own size, what its
container writes elsewhere is counted and stopped, and a workspace left behind by a dead
worker is unmounted before it is removed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ByteSize

from core.events import Masker
from runner.context import WorkerContext
from runner.job import run_job
from runner.recovery import reap_workspaces
from runner.workspace import Workspace
from tests.runner.test_execution import events_of, final
from tests.runner_support import Person, with_settings

FILL = "/bin/sh -c 'dd if=/dev/zero of={path} bs=1M count={mb} 2>&1 | head -n 1; {then}; echo; echo done'"


def mounts_under(path: Path) -> list[str]:
    return [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines() if str(path) in line]


def test_a_full_workspace_fails_the_agents_writes_not_the_host(
    ctx: WorkerContext, alice: Person, make_env, start_run, store
):
    ctx = with_settings(
        ctx,
        workspace_size=ByteSize(64 * 1024**2),
        command_harness=FILL.format(path="/workspace/big", mb=200, then="df -m /workspace | tail -n 1"),
        command_harness_format="text",
    )
    run_id = start_run(alice.principal, make_env())

    assert run_job(ctx, run_id) == "SUCCEEDED"

    lines = [e.text for e in events_of(store, run_id) if e.text]
    assert any("No space left on device" in line for line in lines), lines
    work = ctx.settings.effective_work_dir
    assert not (work / run_id).exists()
    assert mounts_under(work) == []


def test_writing_too_much_outside_the_workspace_stops_the_run(
    ctx: WorkerContext, alice: Person, make_env, start_run, store
):
    ctx = with_settings(
        ctx,
        container_storage_limit=ByteSize(16 * 1024**2),
        storage_check_seconds=0.5,
        command_harness=FILL.format(path="/tmp/big", mb=40, then="sleep 60"),
        command_harness_format="text",
    )
    run_id = start_run(alice.principal, make_env())

    assert run_job(ctx, run_id) == "ERROR"

    status = final(store, run_id).status_message
    assert status.error_code == "agent_process_failed" and status.retryable is False
    written = re.match(
        r"The run's container wrote too much outside /workspace \(it had written ([\d.]+)MiB", status.message
    )
    assert written and float(written.group(1)) > 16, status.message  # caught past the limit (how far: timing)
    assert "the limit is 16.0MiB" in status.message


def test_a_dead_workers_workspace_is_unmounted_and_removed(ctx: WorkerContext, tmp_path: Path):
    run_id = "0b7c4d7e-6f1a-4a5e-9c4e-0f5a1b2c3d4e"  # no run of this store: nobody executes it
    base = ctx.settings.effective_work_dir
    ws = Workspace.create(base, run_id, "file:///nowhere", Masker(), size=32 * 1024**2)
    (ws.files / "left-behind").write_text("x")
    assert mounts_under(base / run_id) != []

    assert reap_workspaces(ctx) == [run_id]

    assert mounts_under(base) == [] and not (base / run_id).exists()


@pytest.fixture
def alice(runner_alice: Person) -> Person:
    return runner_alice


def test_a_read_only_root_leaves_only_the_runs_own_places_writable(
    ctx: WorkerContext, alice: Person, make_env, start_run, store
):
    script = (
        "/bin/sh -c '"
        "touch /etc/planted 2>&1 | head -n 1; "
        "echo scratch > /tmp/t && echo tmp: $(cat /tmp/t); "
        "echo mine > /root/.note && echo home: $(cat /root/.note); "
        "df -m /tmp | tail -n 1; "
        "echo; echo done'"
    )
    ctx = with_settings(
        ctx, workspace_size=ByteSize(48 * 1024**2), command_harness=script, command_harness_format="text"
    )
    run_id = start_run(alice.principal, make_env(read_only_root=True))

    assert run_job(ctx, run_id) == "SUCCEEDED"

    lines = [e.text for e in events_of(store, run_id) if e.text]
    assert any("Read-only file system" in line for line in lines), lines
    assert "tmp: scratch" in lines and "home: mine" in lines
    # /tmp is on the run's own filesystem (a loop device of the workspace's size), not the host's
    tmp = next(line for line in lines if line.startswith("/dev/"))
    assert tmp.startswith("/dev/loop") and int(tmp.split()[1]) < 48, tmp
