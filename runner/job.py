"""``execute_run``: the RQ job that turns a QUEUED run into a finished one.

Steps (each failure ends the run through ``core.runs.record_failure`` with a catalog code):

1. claim QUEUED → PENDING (a compare-and-set: a duplicate delivery or a cancelled run is skipped);
2. resolve the environment and the GitHub credential, check every repo is reachable;
3. clone on the host, → CLAIMED, start the container (limits, no privileges) — or, when the
   environment's snapshot was made from the same inputs, start from it (``runner.snapshots``);
4. check the working directory, run setup commands in order (and keep their result as the
   environment's snapshot) — skipped when started from a snapshot;
5. → INPROGRESS, run the harness, streaming its output as typed events;
6. commit / push / open PRs, keep artifacts, → SUCCEEDED.

The container and the host workspace are removed on every path.
"""

from __future__ import annotations

import dataclasses
import functools
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
import structlog
from docker.errors import APIError
from pydantic import ByteSize
from sqlalchemy import select
from sqlalchemy.orm import Session

from core import budgets, events, mcp, runs
from core.agents import get_agent
from core.environments import get_environment
from core.errors import ErrorCode, OzError
from core.events import EventKind, Masker, RunEvent
from core.github_auth import mark_stale
from core.managed_secrets import personal_names, resolve_secrets
from core.models import Environment, RepoRef, Run, RunState, StatusMessage
from core.network import Endpoint, check_network, parse_endpoints
from core.prices import dollars
from core.skills import parse as parse_skill
from core.store import utcnow
from core.store.tables import AccountRow, RunAttachmentRow
from runner import export, github, pulls
from runner.agent import Agent, AgentUser, agent_user, hand_over
from runner.backends.base import SandboxHandle
from runner.context import WorkerContext, worker_context
from runner.egress import EgressForwarder, hosts_entries
from runner.harness import Driver, Invocation, StreamParser, driver_for
from runner.harness.base import Attachment
from runner.landing import Author
from runner.sandbox import PROMPT_DIR, WORKSPACE, Bind, OutputTail, SandboxSpec
from runner.skills import read_skill, skill_repo
from runner.snapshots import Inputs, Refusal, Snapshot, Snapshots
from runner.supervisor import CANCELLED, IDLE, OVER_BUDGET, OVER_STORAGE, TIMED_OUT, Supervisor
from runner.transcript import TranscriptWriter
from runner.workspace import Workspace

log = structlog.get_logger(__name__)
S = RunState


@dataclasses.dataclass(frozen=True)
class Start:
    """Where the run's container starts from."""

    image: str
    snapshot: Snapshot | None = None
    """The environment's snapshot it starts from (setup skipped), if warm."""
    key: str | None = None
    """Cold, and its setup's result is to be kept as the snapshot under this key."""
    inspected: dict | None = None
    """The image's inspection, when it was looked at already."""


HOME_COPY_LIMIT = 1024**3
"""How much of the image's home directories a read-only run copies when workspaces have no size."""


def claim(ctx: WorkerContext, run_id: str) -> Run | None:
    """QUEUED → PENDING, or ``None`` when the run is no longer waiting for us."""
    try:
        return runs.transition(
            ctx.store,
            ctx.queue,
            run_id,
            S.PENDING,
            expected={S.QUEUED},
            heartbeat_at=utcnow(),
            worker_host=ctx.settings.effective_host_name,
        )
    except runs.StaleState as stale:
        log.info("job.skipped", run_id=run_id, state=stale.current.value)
        return None


class Terminated(BaseException):
    """The worker process was asked to stop (SIGTERM) while executing this run."""


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """In the work horse, turn SIGTERM into :class:`Terminated` so cleanup still runs.

    RQ resets the horse's SIGTERM to the default (die at once), which would leave the
    container behind; only the main thread may install handlers, so threads skip this.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Stopped(Exception):
    """The supervisor stopped the run (cancel or timeout); ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Execution:
    def __init__(self, ctx: WorkerContext, run: Run) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.run = run
        self.masker = Masker()
        self.supervisor = Supervisor(ctx, run.run_id, self.settings.max_runtime_seconds)
        self.sandbox: SandboxHandle | None = None
        self.workspace: Workspace | None = None
        """Both exist from their step on (``ws``/``box`` after it); cleanup checks for ``None``."""
        self.egress: EgressForwarder | None = None
        self.transcript = TranscriptWriter(self._write, self.settings.max_events_per_run)
        self.supervisor.on_tick = self.transcript.flush
        self.agent_started = False
        self.agent: Agent | None = None
        self.ready_for: str | None = None
        """The environment whose snapshot this run started from or made: a ready disk is made after it."""
        self.retry: tuple[OzError, int] | None = None
        """A platform error before the agent started, to be retried (the error, which retry)."""

    # --- the steps ------------------------------------------------------------------------

    @property
    def ws(self) -> Workspace:
        assert self.workspace is not None, "the workspace step has run"
        return self.workspace

    @property
    def box(self) -> SandboxHandle:
        assert self.sandbox is not None, "the sandbox step has run"
        return self.sandbox

    def execute(self) -> None:
        self.supervisor.start()
        try:
            with sigterm_raises():
                self._execute()
        except Terminated:
            self._on_terminated()
        except Stopped as stop:
            self._on_stopped(stop.reason)
        except runs.StaleState as stale:
            log.info("job.overtaken", run_id=self.run.run_id, state=stale.current.value)
        except OzError as error:
            self._fail_or_retry(error)
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            # GitHub's calls say so themselves (runner.github.answering): this is the engine
            log.warning("job.docker_unanswered", run_id=self.run.run_id, reason=type(exc).__name__)
            self._fail_or_retry(
                OzError(ErrorCode.RESOURCE_UNAVAILABLE, type(exc).__name__, title="The Docker engine did not answer")
            )
        except Exception:
            log.exception("job.crashed", run_id=self.run.run_id)
            self._fail_or_retry(OzError(ErrorCode.INTERNAL_ERROR))
        finally:
            self.supervisor.finish()
            self.transcript.flush()
            if self.egress is not None:
                self.egress.close()
            if self.sandbox is not None:
                self.sandbox.remove()
            if self.workspace is not None:
                self.workspace.remove()
            if self.retry is not None:  # only once nothing of this execution is left
                self._requeue(*self.retry)
            if self.ready_for is not None:
                self._make_ready(self.ready_for)

    def _execute(self) -> None:
        self._budget()
        env = self._environment()
        network = self._network(env)
        driver = self._driver()
        skill = parse_skill(self.run.skill_spec) if self.run.skill_spec else None
        skill_ref = skill_repo(skill, env.repos) if skill else None
        reads = [r for r in [skill_ref] if r and r.full_name not in {e.full_name for e in env.repos}]
        credentials = self._credentials([*env.repos, *reads])
        secrets = self._secrets(env, driver)
        skill_prompt = (
            read_skill(self.settings, skill, skill_ref, credentials.token_for(skill_ref))
            if skill and skill_ref
            else None
        )
        self._checkpoint()
        self.workspace = Workspace.create(
            self.settings.effective_work_dir,
            self.run.run_id,
            self.settings.github_clone_url,
            self.masker,
            mount=False,
            host=self.settings.effective_host_name,
        )
        variables = {**env.variables, **secrets, "OZ_RUN_ID": self.run.run_id}
        invocation = self._invocation(driver, "", variables, self._mcp_servers(variables))
        egress = self._egress(env, driver, invocation) if network == "egress" else []
        for name, content in driver.files(invocation).items():
            self.ws.write_config(name, content)
        start = self._prepare_workspace(env, network, credentials, secrets)
        self._transition(S.CLAIMED)
        binds = [Bind(WORKSPACE, self.ws.files), Bind(PROMPT_DIR, self.ws.prompt_dir, True)]
        if env.read_only_root:
            binds += self._writable_dirs(env, from_image=start.snapshot is None)
        self.sandbox = self.ctx.backend.start(
            self.run.run_id,
            SandboxSpec(
                image=start.image,
                binds=binds,
                read_only=env.read_only_root,
                network_mode="none" if network == "egress" else network,
                extra_hosts=hosts_entries(egress),
                memory=self.settings.container_memory,
                cpus=self.settings.container_cpus,
                pids=self.settings.container_pids,
                user="0",  # setup commands may install packages; the agent gets its own user below
                capabilities=self.settings.container_capabilities,
                pull=self.settings.pull_images and start.snapshot is None,
                gateway=self.settings.effective_gateway_id,
                host=self.settings.effective_host_name,
                env=variables,
            ),
            start.inspected,
        )
        self.supervisor.attach(self.box)
        if egress:
            self.egress = self._forwarder(egress)
            self.egress.start(self.box.network_namespace())
        if start.snapshot is None:
            workdir = self._working_directory(env)
            self._setup(env, workdir)
            user = agent_user(self.box, self.settings.container_user)
            hand_over(self.box, user)
        else:  # the snapshot was made in it, by this user, from the same inputs
            workdir, user = self._workdir_of(env), start.snapshot.agent_user
        if start.key is not None:
            self._keep_snapshot(env, start.key, [b.target for b in binds], user)
        attachments = self._attachments()  # after the snapshot: they are this run's alone
        if attachments:
            hand_over(self.box, user, f"{WORKSPACE}/.oz")
        invocation = dataclasses.replace(
            invocation, prompt=self._prompt(skill_prompt, attachments), attachments=tuple(attachments)
        )
        self.ws.write_prompt(invocation.prompt)
        agent = Agent(
            self.box,
            driver,
            dataclasses.replace(invocation, root=user.root),
            workdir=workdir,
            user=user.name,
            masker=self.masker,
            record=self._record,
            checkpoint=self._checkpoint,
            tail_chars=self.settings.output_tail_chars,
        )
        agent.check_program()
        self.agent = agent
        self.supervisor.live_usage = agent.live_usage
        self.agent_started = True  # from here a retry could redo the agent's work: none
        self._transition(S.INPROGRESS, session_link=self.settings.run_page(self.run.run_id))
        self.supervisor.on_followups = agent.deliver
        idle = self.run.config.idle_timeout_minutes
        self.supervisor.watch_idle(idle * 60 if idle else None)
        try:
            parser = agent.run()
        finally:
            self.supervisor.on_followups = None
            self.supervisor.watch_idle(None)
        self._record_usage()
        self._finish(parser)

    # --- the workspace, cold or from a snapshot -------------------------------------------

    def _prepare_workspace(
        self, env: Environment, network: str, credentials: github.RunCredentials, secrets: dict[str, str]
    ) -> Start:
        """The repos cloned and the agent's filesystem mounted: a copy of the environment's
        snapshot when nothing it was made from has changed (warm: setup is skipped), else
        empty (cold: setup runs, and its result may become the snapshot)."""
        size = self.settings.effective_workspace_size
        with self.ctx.store.reader() as session:  # a re-run goes on from the branch it pushed
            resume = pulls.branch_name(self.run) if pulls.pushed_before(session, self.run.run_id) else None
        if not self.snapshots.enabled or not env.setup_commands or env.uid == "empty":  # nothing to skip
            self.ws.mount(size)
            for ref in env.repos:
                self.ws.clone(ref, credentials.token_for(ref), resume)
                self._checkpoint()
            return Start(env.docker_image)
        image = self.ctx.backend.inspect_image(env.docker_image, self.settings.pull_images)
        inputs = self._snapshot_inputs(env, image["Id"], network, secrets)
        snapshots = self.snapshots
        with snapshots.reading(env.uid) as snapshot:
            fetched = []
            for ref in env.repos:  # a snapshot's clone is brought up to date: only new commits are fetched
                fetched.append(self.ws.fetch(ref, credentials.token_for(ref), resume, self._seed(snapshot, ref)))
                self._checkpoint()
            key = inputs.key([f.base_commit for f in fetched])
            warm = snapshot if snapshot is not None and snapshot.key == key and resume is None else None
            if warm is not None:
                ready = self.ws.root / "ready"
                if snapshots.take_ready(warm, ready):
                    self.ws.use_disk(ready)
                else:
                    self.ws.mount(size, snapshots.disk_of(warm))
                snapshots.used(warm)
                self.ready_for = env.uid
            else:
                self.ws.mount(size)
        for repo in fetched:
            if warm is not None:
                self.ws.adopt(repo)
            else:
                self.ws.check_out(repo)
                self._checkpoint()
        if warm is not None:
            made = warm.created_at.strftime("%Y-%m-%d %H:%M UTC")
            self._record(
                [
                    RunEvent(
                        kind=EventKind.STATUS, text=f"Setup skipped: started from this environment's snapshot of {made}"
                    )
                ]
            )
            log.info("snapshot.used", run_id=self.run.run_id, environment=env.uid)
            return Start(warm.image, snapshot=warm, inspected=snapshots.images.get(warm.image))
        keep = resume is None and not snapshots.refused(env.uid, key)
        return Start(env.docker_image, key=key if keep else None, inspected=image)

    @functools.cached_property
    def snapshots(self) -> Snapshots:
        return Snapshots(self.settings, self.ctx.docker)

    def _snapshot_inputs(self, env: Environment, image_id: str, network: str, secrets: dict[str, str]) -> Inputs:
        """What a snapshot of this environment is made from (but the repos' commits)."""
        person = self.run.creator_uid if self.run.creator_kind == "user" else None
        with self.ctx.store.reader() as session:
            personal = personal_names(session, self.run.team_uid, person, list(secrets))
        return Inputs(
            image_id=image_id,
            repos=tuple(f"{ref}@{ref.branch or ''}" for ref in env.repos),
            setup=tuple(env.setup_commands),
            variables=tuple(sorted(env.variables.items())),
            secrets=tuple(sorted(f"{name}@{person}" if name in personal else name for name in secrets)),
            working_dir=env.working_dir,
            container_user=self.settings.container_user,
            network=network,
            read_only_root=env.read_only_root,
            disk_size=self.settings.effective_workspace_size,
        )

    def _seed(self, snapshot: Snapshot | None, ref: RepoRef) -> Path | None:
        """The snapshot's clone of ``ref`` to fetch into, when it is of the branch asked for."""
        if snapshot is None:
            return None
        kept = next((r for r in snapshot.repos if r.full_name == str(ref)), None)
        if kept is None or (ref.branch and ref.branch != kept.branch):
            return None
        return self.snapshots.pristine_of(snapshot, str(ref))

    def _make_ready(self, environment_uid: str) -> None:
        """After the run (never on its way to start): a copy of the snapshot's disk for the next
        warm start to take, so that it need not copy one itself."""
        try:
            self.snapshots.make_ready(environment_uid, self.settings.effective_workspace_size, self.run.run_id)
        except (OzError, OSError, ValueError) as exc:
            log.warning("snapshot.ready_failed", environment=environment_uid, reason=str(exc)[:300])

    def _keep_snapshot(self, env: Environment, key: str, mounts: list[str], user: AgentUser) -> None:
        """Keep what setup made as the environment's snapshot; a failure costs only the warm
        start of later runs, never this run."""
        try:
            kept = self.snapshots.keep(
                env.uid,
                key,
                run_id=self.run.run_id,
                sandbox=self.box,
                workspace=self.ws,
                masker=self.masker,
                mounts=mounts,
                agent_user=user,
            )
        except (OzError, OSError, APIError, requests.exceptions.RequestException) as exc:
            log.warning("snapshot.failed", run_id=self.run.run_id, reason=self.masker.text(str(exc))[:300])
            return
        if isinstance(kept, Refusal):  # a kept one is only logged: the next run says it started from it
            text = f"No snapshot kept: {kept.reason}. This environment's runs repeat setup until it changes."
            self._record([RunEvent(kind=EventKind.STATUS, text=self.masker.text(text))])
        else:
            self.ready_for = env.uid
        self._checkpoint()

    def _budget(self) -> None:
        """Budgets may have been spent while the run waited: refuse it now if so, else give the
        supervisor the most it may cost."""
        with self.ctx.store.reader() as session:
            budgets.require_room(session, self.run.team_uid, self.run.billed_to)
            self.supervisor.cap = budgets.run_cap(session, self.run)

    def _record_usage(self) -> None:
        """Keep what the agent used, however its execution ends (once: the usage is moved out)."""
        agent, self.agent = self.agent, None
        self.supervisor.live_usage = list
        if agent is not None:
            with self.ctx.store.session() as session:
                runs.record_usage(session, self.run.run_id, agent.live_usage(), self.settings.prices)

    def _network(self, env: Environment) -> str:
        """The container's network (``core/network.py``): host and bridge only where the
        operator allowed them."""
        network = env.network_mode or self.settings.container_network
        check_network(
            network, allow_host=self.settings.allow_host_network, allow_bridge=self.settings.allow_bridge_network
        )
        return network

    def _egress(self, env: Environment, driver: Driver, invocation: Invocation) -> list[Endpoint]:
        """What an ``egress`` container may reach: the operator's list, the environment's and
        the harness's model API."""
        try:
            mcp = [server["url"] for server in invocation.mcp_servers.values() if server.get("url")]
            return parse_endpoints([*self.settings.egress_allow, *env.egress, *driver.egress(invocation), *mcp])
        except ValueError as exc:
            raise OzError(
                ErrorCode.ENVIRONMENT_SETUP_FAILED, str(exc), title="An egress endpoint cannot be forwarded"
            ) from None

    def _forwarder(self, egress: list[Endpoint]) -> EgressForwarder:
        return EgressForwarder(
            egress,
            allow_private=self.settings.egress_allow_private,
            max_connections=self.settings.egress_max_connections,
            on_refused=lambda text: self._record([RunEvent(kind=EventKind.STATUS, text=text)]),
        )

    def _writable_dirs(self, env: Environment, *, from_image: bool) -> list[Bind]:
        """A read-only root's writable places on the run's own filesystem, the homes with the
        image's files in them (where CLIs keep their settings and sessions) — already there
        in a snapshot's copy."""
        dirs = self.ws.writable_dirs()
        if not from_image:
            return [Bind(target, source) for target, source in dirs.items()]
        self.ctx.backend.copy_from_image(
            env.docker_image,
            ["/home", "/root"],
            self.ws.disk,
            limit=self.settings.effective_workspace_size or HOME_COPY_LIMIT,
            pull=self.settings.pull_images,
        )
        return [Bind(target, source) for target, source in dirs.items()]

    def _driver(self) -> Driver:
        harness = self.run.config.harness
        return driver_for(harness.type if harness else None, self.settings)

    def _mcp_servers(self, variables: dict[str, str]) -> dict[str, dict]:
        """The run's MCP servers (``core/mcp.py``): its cloud agent's, then the run's own (which
        carry its integration's), unsealed, with ``${NAME}`` credentials taken from the run's
        variables and managed secrets — every one masked in the transcript."""
        agent_servers = None
        if self.run.agent_uid:
            with self.ctx.store.reader() as session:
                agent = get_agent(session, self.run.team_uid, self.run.agent_uid, self.settings.agent_limit)
                agent_servers = agent.settings.get("mcp_servers")
        servers = mcp.unseal(mcp.merge(agent_servers, self.run.config.mcp_servers), self.ctx.vault) or {}
        servers, missing = mcp.expand(servers, variables)
        if missing:
            raise OzError(
                ErrorCode.ENVIRONMENT_SETUP_FAILED,
                "create them with `oz-gateway secret create NAME --team` (or --personal) and name them in the "
                "environment (`--secret NAME`)",
                title=f"MCP servers name secrets that are not defined: {', '.join(missing)}",
            )
        for value in mcp.credentials_of(servers):
            self.masker.add(value)
        return servers

    def _invocation(
        self, driver: Driver, prompt: str, variables: dict[str, str], mcp_servers: dict[str, dict]
    ) -> Invocation:
        harness = self.run.config.harness
        return Invocation(
            prompt=prompt,
            prompt_file=f"{PROMPT_DIR}/prompt.md",
            model_id=(harness.model_id if harness and harness.model_id else self.run.model_id),
            reasoning_level=harness.reasoning_level if harness else None,
            variables=variables,
            config_dir=PROMPT_DIR,
            model_retries=self.settings.agent_model_retries,
            mcp_servers=mcp_servers,
        )

    def _environment(self) -> Environment:
        if self.run.environment_id:
            with self.ctx.store.reader() as session:
                return get_environment(session, self.run.team_uid, self.run.environment_id)
        now = self.run.created_at
        return Environment(
            uid="empty",
            team_uid=self.run.team_uid,
            name="empty",
            created_at=now,
            updated_at=now,
            docker_image=self.settings.default_image,
        )

    def _credentials(self, repos: list[RepoRef]) -> github.RunCredentials:
        credentials = github.resolve(self.ctx.store, self.ctx.vault, self.settings, self.run, repos)
        for secret in credentials.secrets:
            self.masker.add(secret)
        try:
            github.check_access(self.settings, credentials, repos)
        except github.Revoked as revoked:
            with self.ctx.store.session() as session:
                mark_stale(session, revoked.account_uid)  # the next run asks the person again
            raise revoked.error from None
        return credentials

    def _secrets(self, env: Environment, driver: Driver) -> dict[str, str]:
        """The managed secrets the environment and the executing agent name, and the harness's
        model key, for this container only; all checked before anything starts."""
        names = list(env.secret_names)
        person = self.run.creator_uid if self.run.creator_kind == "user" else None
        with self.ctx.store.reader() as session:
            if self.run.agent_uid:
                agent = get_agent(session, self.run.team_uid, self.run.agent_uid, self.settings.agent_limit)
                names += [s["name"] for s in agent.settings.get("secrets", []) if s["name"] not in names]
            values, missing = resolve_secrets(session, self.ctx.vault, self.run.team_uid, person, names)
            keys = self._model_key(session, driver, person)
        if missing:
            raise OzError(
                ErrorCode.ENVIRONMENT_SETUP_FAILED,
                "create them with `oz-gateway secret create NAME --team` (or --personal)",
                title=f"Secrets not defined: {', '.join(missing)}",
            )
        if driver.key_secrets and not keys:
            first = self._named_key(driver) or driver.key_secrets[0]
            raise OzError(
                ErrorCode.ENVIRONMENT_SETUP_FAILED,
                f"create it with `oz-gateway secret create {first} --team` (or --personal); "
                "only this run's container receives it",
                title=f"The {driver.name} harness needs a model key: the managed secret {first} is not defined",
            )
        values = {**keys, **values}
        for value in values.values():
            self.masker.add(value)
        return values

    def _named_key(self, driver: Driver) -> str | None:
        """The secret the run's ``harness_auth_secrets`` names for this harness, if any."""
        auth = self.run.config.harness_auth_secrets
        return getattr(auth, f"{driver.name}_auth_secret_name", None) if auth else None

    def _model_key(self, session: Session, driver: Driver, person: str | None) -> dict[str, str]:
        """The harness's model key: the secret the run's ``harness_auth_secrets`` names (given to
        the CLI under its own variable), else whichever of the CLI's usual names exists."""
        named = self._named_key(driver)
        if named and driver.key_secrets:
            found, _ = resolve_secrets(session, self.ctx.vault, self.run.team_uid, person, [named])
            return {driver.key_secrets[0]: found[named]} if found else {}
        keys, _ = resolve_secrets(session, self.ctx.vault, self.run.team_uid, person, list(driver.key_secrets))
        return keys

    def _attachments(self) -> list[Attachment]:
        """The request's files, placed at ``/workspace/.oz/attachments/`` for the agent."""
        with self.ctx.store.reader() as session:
            rows = session.scalars(
                select(RunAttachmentRow).where(RunAttachmentRow.run_id == self.run.run_id).order_by(RunAttachmentRow.id)
            ).all()
            files = [(row.file_name, row.mime_type, row.data) for row in rows]
        return [Attachment(self.ws.write_attachment(name, data), mime, data) for name, mime, data in files]

    def _prompt(self, skill: str | None, attachments: Sequence[Attachment] = ()) -> str:
        """The skill (the base the seeds put first), the run's base prompt, its prompt, where
        its attached files are, and the follow-ups that came while it was queued."""
        with self.ctx.store.session() as session:
            followups = runs.take_followups(session, self.run.run_id)
        parts = [skill] if skill else []
        if self.run.config.base_prompt:
            parts.append(self.run.config.base_prompt.strip())
        parts.append(self.run.prompt.strip())
        if attachments:
            listed = "\n".join(f"- {a.path} ({a.mime_type})" for a in attachments)
            parts.append(f"Files attached to this request:\n{listed}")
        parts.extend(f"Follow-up: {message.strip()}" for message in followups)
        return "\n\n".join(p for p in parts if p)

    @staticmethod
    def _workdir_of(env: Environment) -> str:
        return env.working_dir or (f"{WORKSPACE}/{env.repos[0].repo}" if env.repos else WORKSPACE)

    def _working_directory(self, env: Environment) -> str:
        """The agent's working directory, which must exist in the container."""
        workdir = self._workdir_of(env)
        exists = self.box.directory_exists(workdir)
        self._checkpoint()
        if exists is None:
            raise OzError(ErrorCode.RESOURCE_UNAVAILABLE, "the run's container stopped during setup")
        if not exists:
            raise OzError(
                ErrorCode.ENVIRONMENT_SETUP_FAILED,
                f"{workdir} does not exist in the container",
                title="Working directory not found",
            )
        return workdir

    def _setup(self, env: Environment, workdir: str) -> None:
        for command in env.setup_commands:
            tail = OutputTail(self.settings.output_tail_chars)
            self._record([RunEvent(kind=EventKind.STATUS, text=f"Setup: {command}")])
            code = self.box.exec(["/bin/sh", "-c", command], workdir=workdir, on_output=tail.add)
            self._checkpoint()
            if code != 0:
                raise OzError(
                    ErrorCode.ENVIRONMENT_SETUP_FAILED,
                    self.masker.text(tail.text.strip()) or None,
                    title=f"Setup command {command!r} exited with {code}",
                )

    def _finish(self, parser: StreamParser) -> None:
        self.transcript.flush()  # every step is stored before the run says it is done
        summary = self.masker.text(parser.summary) if parser.summary else None
        self.box.kill()  # nothing of the agent may still run while its work is exported
        exports = export.export_all(self.ctx.backend, self.settings, self.ws, self.run.run_id)
        self._checkpoint()
        published = pulls.publish(
            self.settings,
            self.ws,
            exports,
            self.run,
            summary=summary,
            agent=Author(self.settings.agent_git_name, self.settings.agent_git_email),
            coauthor=self._coauthor(),
            run_url=self.settings.run_page(self.run.run_id),
        )
        opened = published.opened
        message = summary or "The agent finished without a summary."
        if opened:
            message += "\n" + "\n".join(f"Pull request: {p.url}" for p in opened)
        if published.read_only:
            message += (
                f"\nChanges in {', '.join(published.read_only)} were not pushed: the run could only read them. "
                f"Authorize GitHub to let runs open pull requests: "
                f"{github.auth_url(self.settings, self.run.creator_uid)}"
            )
        elif not opened and self.ws.repos:
            message += "\nNo changes were made, so no pull request was opened."
        with self.ctx.store.session() as session:
            pulls.record_pull_requests(session, self.run.run_id, opened)
            pulls.record_files(session, self.ws, self.run.run_id)
            runs.set_status(
                session,
                self.run.run_id,
                S.SUCCEEDED,
                expected={S.INPROGRESS},
                status_message=StatusMessage(message=message),
                prices=self.settings.prices,
            )
            reopen = bool(runs.pending_followups(session, self.run.run_id))
            if reopen:  # follow-ups arrived while it worked: carry on in a new execution, in the same commit
                runs.set_status(
                    session, self.run.run_id, S.QUEUED, expected={S.SUCCEEDED}, attempt=self.run.attempt + 1
                )
        # One commit, then one announcement of where it ended: no reporter sees a SUCCEEDED that a
        # waiting follow-up re-opens a moment later.
        if self.ctx.queue is not None:
            self.ctx.queue.announce(self.run.run_id, (S.QUEUED if reopen else S.SUCCEEDED).value)
            if reopen:
                self.ctx.queue.enqueue(self.run.run_id)

    # --- helpers --------------------------------------------------------------------------

    def _checkpoint(self) -> None:
        if self.supervisor.reason:
            raise Stopped(self.supervisor.reason)

    def _fail_or_retry(self, error: OzError) -> None:
        """A retryable platform error (the catalog's ``retryable``: an engine or GitHub that did
        not answer, …) before the agent started is tried again, ``OZGW_PLATFORM_RETRIES`` times
        with a doubling wait; anything else, or later, ends the run."""
        if error.retryable and not self.agent_started:
            key = f"{self.settings.redis_prefix}run-retries:{self.run.run_id}"
            try:
                assert self.ctx.redis is not None  # no Redis: no retry either (the except below)
                done = int(self.ctx.redis.incr(key))
                self.ctx.redis.expire(key, 24 * 3600)
            except Exception:  # the blip may be Redis itself: then no retry
                done = self.settings.platform_retries + 1
            if done <= self.settings.platform_retries:
                self.retry = (error, done)
                return
        self._fail(error)

    def _requeue(self, error: OzError, attempt: int) -> None:
        wait = self.settings.platform_retry_seconds * 2 ** (attempt - 1)
        note = f"{error.title or error.code.value}: {error.message}"
        limit = self.settings.platform_retries
        self._record([RunEvent(kind=EventKind.STATUS, text=f"Retrying in {wait:g} s ({attempt} of {limit}) — {note}")])
        self.transcript.flush()
        log.warning("job.retrying", run_id=self.run.run_id, attempt=attempt, code=error.code.value)
        time.sleep(wait)
        message = StatusMessage(message=f"Retrying ({attempt} of {limit}) after: {note}", error_code=error.code)
        runs.requeue(  # unless cancelled meanwhile
            self.ctx.store,
            self.ctx.queue,
            self.run.run_id,
            expected={S.PENDING, S.CLAIMED},
            heartbeat_at=None,
            status_message=message,
            prices=self.settings.prices,
        )

    def _fail(self, error: OzError) -> None:
        self.transcript.flush()
        self._record_usage()
        runs.record_failure(self.ctx.store, self.ctx.queue, self.run.run_id, error, self.settings.prices)

    def _on_terminated(self) -> None:
        """The worker is shutting down: a run whose agent never started goes back to the queue."""
        log.warning("job.terminated", run_id=self.run.run_id, state=self.run.state.value)
        if self.run.started_at is None:
            runs.requeue(
                self.ctx.store,
                self.ctx.queue,
                self.run.run_id,
                expected={S.PENDING, S.CLAIMED},
                heartbeat_at=None,
                prices=self.settings.prices,
            )
            return
        self._fail(OzError(ErrorCode.AGENT_PROCESS_FAILED, "the worker shut down while the agent was running"))

    def _on_stopped(self, reason: str) -> None:
        log.info("job.stopped", run_id=self.run.run_id, reason=reason)
        if reason == TIMED_OUT:
            self._fail(OzError(ErrorCode.INFRASTRUCTURE_TIMEOUT, f"the limit is {self.settings.max_runtime_seconds} s"))
        elif reason == IDLE:
            minutes = self.run.config.idle_timeout_minutes
            self._fail(
                OzError(
                    ErrorCode.INFRASTRUCTURE_TIMEOUT,
                    f"it printed nothing for {minutes} min (the run's idle_timeout_minutes)",
                    title="The agent went quiet",
                )
            )
        elif reason == OVER_STORAGE:
            limit = self.settings.container_storage_limit.human_readable()
            self._fail(
                OzError(
                    ErrorCode.AGENT_PROCESS_FAILED,
                    f"it had written {ByteSize(self.supervisor.written or 0).human_readable()}; the limit is {limit} "
                    "(OZGW_CONTAINER_STORAGE_LIMIT); /workspace has a limit of its own",
                    title="The run's container wrote too much outside /workspace",
                )
            )
        elif reason == OVER_BUDGET:
            cap = self.supervisor.cap
            assert cap is not None  # the supervisor stops for cost only with a cap
            self._fail(
                OzError(
                    ErrorCode.BUDGET_EXCEEDED,
                    f"it had cost {dollars(self.supervisor.cost)}, reaching {cap.reason}: {dollars(cap.usd)}",
                    title="The run was stopped at its spending limit",
                )
            )
        else:
            assert reason == CANCELLED
            self._record_usage()
            with self.ctx.store.session() as session:  # the cancel stopped the clock; cost what ran
                runs.record_cost(session, self.run.run_id, self.settings.prices)
            if self.ctx.queue is not None:  # the container is gone now: the thread may say so
                self.ctx.queue.announce(self.run.run_id, S.CANCELLED.value)

    def _transition(self, to: RunState, **changes: Any) -> None:
        self._checkpoint()
        self.run = runs.transition(self.ctx.store, self.ctx.queue, self.run.run_id, to, **changes)

    def _record(self, new: list[RunEvent]) -> None:
        """Transcript events, batched and capped by :class:`TranscriptWriter` (the agent's output
        and the supervisor's follow-up notes both come here)."""
        self.supervisor.heard()
        self.transcript.add(new)

    def _write(self, new: list[RunEvent]) -> None:
        """Store and announce one batch of events, with the latest step as the run's progress."""
        with self.ctx.store.session() as session:
            stored = events.record(session, self.run.run_id, new, self.masker)
            latest = next((e for e in reversed(stored) if e.kind != EventKind.STATUS), None)
            if latest is not None:
                runs.note_progress(session, self.run.run_id, f"Working: {latest.headline()}")
        if self.ctx.queue is not None:
            self.ctx.queue.publish(self.run.run_id, stored)

    def _coauthor(self) -> Author | None:
        if self.run.creator_kind != "user":
            return None
        with self.ctx.store.reader() as session:
            person = session.get(AccountRow, self.run.creator_uid)
            return Author(person.display_name or person.email, person.email) if person else None


def run_job(ctx: WorkerContext, run_id: str) -> str:
    structlog.contextvars.bind_contextvars(run_id=run_id)
    run = claim(ctx, run_id)
    if run is None:
        return "skipped"
    Execution(ctx, run).execute()
    with ctx.store.reader() as session:
        return runs.load_run(session, run_id).state.value


def execute_run(run_id: str) -> str:
    """The RQ entry point (``runner.job.execute_run``); returns the run's final state."""
    return run_job(worker_context(), run_id)
