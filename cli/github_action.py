"""The GitHub Actions entry point's composition root: remote mode lives in ``bots.github``;
local mode runs the run right on the Actions runner with the worker's own code (a SQLite
store in a temporary directory, no Redis, the workflow's ``GITHUB_TOKEN`` for git and PRs)."""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from bots.github.action import ActionConfig, RunRequest, RunWatcher, run_action
from core import environments, run_items, runs
from core.accounts import create_account
from core.models import Origin, Principal, RunItem, RunSourceType
from core.models.wire import TERMINAL_STATES, RunAgentRequest
from core.settings import Settings
from core.store import Store
from runner.context import WorkerContext
from runner.job import run_job


def local_settings(config: ActionConfig, data_dir: Path) -> Settings:
    """Gateway settings from ``OZGW_*`` (the action passes harness and container options),
    pointed at this workflow's repository and token."""
    return Settings(
        data_dir=data_dir,
        database_url=f"sqlite:///{data_dir / 'local.db'}",
        github_api_url=config.api_url,
        github_clone_url=os.environ.get("OZGW_GITHUB_CLONE_URL", config.server_url),
        github_token=config.github_token,
        local_mode=True,
        public_url=f"{config.server_url}/{config.repository}/actions/runs/{config.run_id}",
        secret_key=os.urandom(24).hex(),
    )


def local_watcher(config: ActionConfig) -> RunWatcher:
    def follow(request: RunRequest) -> Iterator[RunItem]:
        data_dir = Path(tempfile.mkdtemp(prefix="oz-action-"))
        settings = local_settings(config, data_dir)
        store = Store(settings.effective_database_url)
        store.migrate()
        login = request.requester or "github-actions"
        with store.session() as session:
            account = create_account(
                session, f"{login}@users.noreply.github.com", config.repository.split("/")[0], display_name=login
            )
            person = Principal(kind="user", uid=account.uid, team_uid=account.team_uid, email=account.email)
            branch = f"@{config.ref_name}" if config.ref_name else ""
            setup = [c for c in os.environ.get("OZ_SETUP_COMMANDS", "").splitlines() if c.strip()]
            env = environments.create_environment(
                session,
                person,
                name="github-action",
                repos=[f"{config.repository}{branch}"],
                setup_commands=setup,
                docker_image=os.environ.get("OZ_DOCKER_IMAGE") or settings.default_image,
            )
        created = runs.create(
            store,
            None,
            person,
            RunAgentRequest(
                prompt=request.prompt, title=request.title, config={"environment_id": env.uid, "model_id": config.model}
            ),
            source=RunSourceType.GITHUB_ACTION,
            origin=Origin(source=RunSourceType.GITHUB_ACTION, trigger_url=request.trigger_url),
            agent_limit=settings.agent_limit,
        )
        run_id = created.run.run_id
        # Its environment is made for this one run on a machine that goes away: nothing to warm-start.
        ctx = WorkerContext.build(settings.model_copy(update={"snapshot_limit": 0}), store, with_queue=False)
        worker = threading.Thread(target=run_job, args=(ctx, run_id), name="oz-local-run")
        worker.start()
        last: tuple | None = None
        while True:
            with store.reader() as session:
                item = run_items.render_item(session, runs.load_run(session, run_id))
            snapshot = (item.state, item.status_message)
            if snapshot != last:
                last = snapshot
                yield item
            if item.state in TERMINAL_STATES and not worker.is_alive():
                return
            time.sleep(min(config.poll_seconds, 1.0))

    return follow


def main() -> int:
    return run_action(os.environ, local_watcher=local_watcher)


if __name__ == "__main__":
    sys.exit(main())
