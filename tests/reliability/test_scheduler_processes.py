"""Two ``oz-gateway scheduler`` processes on one store and one Redis, as an operator runs them
for availability: a schedule that fell due while both were down fires once (one catch-up run,
one RQ job), however the two race."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select, update

from core import schedules
from core.accounts import create_account
from core.environments import create_environment
from core.models import Principal, RunSourceType
from core.queue import RunQueue
from core.schedules import ScheduleCreate
from core.store import Store, utcnow
from core.store.tables import RunRow, ScheduleFireRow, ScheduleRow
from tests.redis_server import REDIS_URL
from tests.support.people import AGENT_LIMIT
from tests.support.waiting import wait_for


def scheduler(tmp_path: Path, name: str, database_url: str, queue: RunQueue) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OZGW_")}
    env.update(
        OZGW_DATABASE_URL=database_url,
        OZGW_REDIS_URL=REDIS_URL,
        OZGW_QUEUE_NAME=queue.queue.name,
        OZGW_DATA_DIR=str(tmp_path / name),
        OZGW_SCHEDULE_TICK_SECONDS="0.1",
        OZGW_SWEEP_INTERVAL_SECONDS="60",
    )
    log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 - kept open for the process's lifetime
    return subprocess.Popen([sys.executable, "-m", "cli", "scheduler"], env=env, stdout=log, stderr=log)


def test_two_scheduler_processes_fire_a_missed_schedule_once(
    tmp_path: Path, store: Store, database_url: str, queue: RunQueue
):
    with store.session() as session:
        account = create_account(session, "ops@example.com", "acme")
        who = Principal(kind="user", uid=account.uid, team_uid=account.team_uid, email=account.email)
        env = create_environment(session, who, name="nightly", docker_image="debian:12")
        spec = ScheduleCreate(name="Nightly", cron="0 3 * * *", prompt="Rotate the logs", environment_id=env.uid)
        uid = schedules.create(session, who, spec, AGENT_LIMIT).uid
        # It fell due two days ago, while no scheduler ran.
        missed = utcnow() - timedelta(days=2)
        session.execute(update(ScheduleRow).where(ScheduleRow.uid == uid).values(next_fire_at=missed))

    processes = [scheduler(tmp_path, name, database_url, queue) for name in ("a", "b")]
    try:
        run_id = wait_for(lambda: _run_ids(store, uid), timeout=60, what="the catch-up run (see a.log, b.log)")[0]
        time.sleep(1.0)  # ten more ticks of each scheduler: a second run would have been made by now
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)
    assert _run_ids(store, uid) == [run_id]
    with store.reader() as session:
        run = session.get(RunRow, run_id)
        assert run is not None and run.source == RunSourceType.SCHEDULED_AGENT.value
        fires = session.scalar(
            select(func.count()).select_from(ScheduleFireRow).where(ScheduleFireRow.schedule_uid == uid)
        )
        next_fire = session.get(ScheduleRow, uid).next_fire_at
    assert fires == 1
    assert next_fire > utcnow() and next_fire.hour == 3 and next_fire.minute == 0
    assert queue.queue.job_ids == [run_id]
    logs = (tmp_path / "a.log").read_text() + (tmp_path / "b.log").read_text()
    assert logs.count("schedule.fired") == 1


def _run_ids(store: Store, schedule_uid: str) -> list[str]:
    with store.reader() as session:
        return list(session.scalars(select(RunRow.run_id).where(RunRow.schedule_uid == schedule_uid)))
