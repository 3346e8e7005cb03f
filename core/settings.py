"""Gateway settings, read from ``OZGW_*`` environment variables (and an optional ``.env``)."""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import ByteSize, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.network import NetworkMode
from core.prices import PriceTable

DEFAULT_AGENT_LIMIT = 5
"""Cloud agents a team may use unless ``OZGW_AGENT_LIMIT`` says otherwise."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OZGW_", env_file=".env", extra="ignore")

    data_dir: Path = Path(".oz-gateway")
    """Where the embedded default keeps its SQLite file and the Redis it starts itself."""

    database_url: str | None = None
    """SQLAlchemy URL; SQLite under ``data_dir`` when unset, PostgreSQL in production."""

    redis_url: str | None = None
    """RQ's Redis; ``oz-gateway up`` starts a private one when unset."""

    queue_name: str = "oz-runs"
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = None
    """Base URL people reach the gateway at (links in Slack, Linear, GitHub); defaults to host:port."""

    secret_key: SecretStr | None = None
    """Signs download links; ``oz-gateway up`` generates and keeps one under ``data_dir``."""

    agent_limit: int = Field(default=DEFAULT_AGENT_LIMIT, ge=1)
    """Cloud agents a team may have, the default one included (the plan limit)."""

    max_runtime_seconds: int = Field(default=3600, ge=1)
    sweep_interval_seconds: float = Field(default=30.0, gt=0)
    schedule_tick_seconds: float = Field(default=10.0, gt=0)
    """How often the scheduler looks for schedules due to fire."""
    schedule_pause_after: int = Field(default=3, ge=1)
    """A schedule whose last this many fires failed for a configuration reason pauses itself."""
    prices: PriceTable = PriceTable()
    """The price table runs are costed by (``core/prices.py``), JSON in ``OZGW_PRICES``."""
    cost_check_seconds: float = Field(default=2.0, gt=0)
    """How often a working run's cost is brought up to date (and checked against its cap)."""
    orphan_grace_seconds: float = Field(default=5.0, ge=0)
    """How old a QUEUED run without a job must be before a sweep enqueues it again."""
    api_threads: int = Field(default=8, ge=1)
    """Worker threads that run blocking store and queue calls for the aiohttp process."""

    # --- runner ---------------------------------------------------------------------------
    work_dir: Path | None = None
    """Host directory for run workspaces (cloned on the host, bind-mounted); ``<data_dir>-work``."""
    workspace_size: ByteSize | None = None
    """Each run's workspace is a filesystem of this size (``runner/disk.py``; mounting needs
    root); ``0`` keeps workspaces on the work directory's own filesystem, without a limit.
    Unset: 10 GiB for a worker running as root, no limit otherwise (a developer's own machine)."""
    container_storage_limit: ByteSize = ByteSize(10 * 1024**3)
    """The most a run's container may write outside ``/workspace`` (its image's writable layer:
    packages setup commands install, caches); checked every ``storage_check_seconds``."""
    storage_check_seconds: float = Field(default=10.0, gt=0)
    snapshot_limit: ByteSize = ByteSize(20 * 1024**3)
    """The disk this host's environment snapshots may use together (``runner/snapshots.py``):
    past it the least recently used are removed.  ``0`` turns warm starts off."""

    default_image: str = "debian:12"
    """Image for runs without an environment (Oz's "empty environment")."""

    default_harness: Literal["oz", "claude", "codex", "gemini", "command"] = "oz"
    command_harness: str | None = None
    """The ``command`` harness's command line (shell words); it gets the prompt in
    ``$OZ_PROMPT`` and the file ``$OZ_PROMPT_FILE``."""

    command_harness_format: Literal["claude", "codex", "gemini", "text"] = "text"
    """Which stream format the ``command`` harness prints."""

    container_network: NetworkMode = "egress"
    """The network of environments that do not choose one (``core/network.py`` says what each is)."""
    allow_host_network: bool = False
    """Let environments (and ``container_network``) use the host's network.  Off by default: a
    container on the host network reaches the gateway's own Redis, where one pickled RQ job is
    code execution in a worker.  Only for trusted agents."""
    allow_bridge_network: bool = False
    """Let environments use Docker's bridge: open egress, the cloud metadata service included."""
    egress_allow: list[str] = []
    """``host[:port]`` endpoints every ``egress`` container may reach (a company proxy or mirror)."""
    egress_allow_private: bool = False
    """Let allowed endpoints resolve to private, loopback or link-local addresses (a model
    gateway inside the company network; tests reaching fakes on loopback).  Off: an allowed
    name that resolves to the metadata service or the host's own services is refused."""
    egress_max_connections: int = Field(default=256, ge=1)
    """Open forwarded connections one run may hold at once."""
    container_memory: str = "4g"
    container_cpus: float = Field(default=2.0, gt=0)
    container_pids: int = Field(default=1024, ge=16)
    container_capabilities: list[str] = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID"]
    """Linux capabilities run containers keep (all others are dropped).  They matter only to
    root processes — setup commands installing packages; the agent runs as the image's
    non-root user and has none.  ``[]`` for images that need no root setup."""
    container_user: str | None = None
    """The user the agent runs as; by default the image's own ``USER``, or its ``agent`` user when that is
    root (setup commands always run as root, so they can install packages)."""
    pull_images: bool = True
    """Pull an environment's image when the host lacks it (off where no registry is reachable)."""

    platform_retries: int = Field(default=2, ge=0, le=5)
    """How often a run is tried again after a retryable platform error (the catalog's
    ``retryable``) that came before its agent started; never once the agent has started."""
    platform_retry_seconds: float = Field(default=5.0, ge=0)
    """The first retry's wait; each next one waits twice as long."""
    agent_model_retries: int | None = Field(default=None, ge=0, le=9)
    """How often the agent CLI retries a failing model API call before it gives up (Claude Code
    ``CLAUDE_CODE_MAX_RETRIES``, Gemini ``general.maxAttempts``, Codex's provider retries);
    unset keeps each CLI's own default, which for Claude Code means minutes on a wrong key."""

    export_image: str | None = None
    """Image the agent's work is exported in (needs git and ``/bin/sh``); by default one the
    worker builds from its own host's git, so environments need no git of their own."""
    export_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    """The most one repo's new commits may weigh (its git bundle) before the push is refused."""
    export_max_file_bytes: int = Field(default=100 * 1024 * 1024, ge=1)
    """The largest file the agent may add (GitHub refuses files over 100 MB)."""
    export_max_commits: int = Field(default=1000, ge=1)

    heartbeat_seconds: float = Field(default=5.0, gt=0)
    abandoned_after_seconds: float = Field(default=60.0, gt=0)
    """A claimed run whose heartbeat is older than this was abandoned by a dead worker."""

    cancel_poll_seconds: float = Field(default=1.0, gt=0)
    output_tail_chars: int = 4000
    max_events_per_run: int = Field(default=20_000, ge=100)
    """A run's transcript stops growing here (the agent's output is still read to its end)."""

    outbound_timeout_seconds: int = Field(default=30, ge=1)
    """How long a call to Slack, Linear or GitHub may take: a peer that hangs fails the call
    (retried where the caller retries) instead of wedging a worker, the reporter or a front door."""

    github_api_url: str = "https://api.github.com"
    github_clone_url: str = "https://github.com"
    """Base of clone URLs: ``{github_clone_url}/{owner}/{repo}.git``."""

    github_token: SecretStr | None = None
    """One token for every repo: the workflow's ``GITHUB_TOKEN`` in the Action's local mode
    only, where it replaces per-person and App credentials.  A server refuses to start with
    it (``local_mode`` unset): it would silently act on GitHub as one identity for everyone."""
    local_mode: bool = False
    """Set by the GitHub Action's local mode (one run on the Actions runner), never on a server."""

    github_app_id: str | None = None
    github_app_private_key: SecretStr | None = None
    """The GitHub App's PEM private key (or ``@/path/to/key.pem``)."""

    github_web_url: str | None = None
    """Where people sign in to GitHub (OAuth); derived from the API URL when unset."""

    github_oauth_client_id: str | None = None
    github_oauth_client_secret: SecretStr | None = None
    github_webhook_secret: SecretStr | None = None
    """The App's webhook secret: ``/github/webhook`` refuses deliveries it did not sign."""

    agent_git_name: str = "Oz Agent"
    agent_git_email: str = "oz-agent@users.noreply.github.com"

    encryption_keys: SecretStr | None = None
    """Comma-separated Fernet keys, newest first; older keys still decrypt (rotation)."""

    # --- reporting back (Slack threads, Linear sessions) ------------------------------------
    report_interval_seconds: float = Field(default=1.5, ge=0)
    """Least time between two renders of one run (bursts of agent steps are coalesced, so a
    chatty agent never gets the bot rate-limited)."""
    report_sweep_seconds: float = Field(default=30.0, gt=0)
    """How often the reporter re-renders active runs (elapsed time, Slack's 2-minute thread status)."""
    inbox_lease_seconds: float = Field(default=60.0, gt=0)
    """A Slack or Linear delivery whose handling has not finished this long after it began is
    taken up again (its web process died after answering: ``core/inbox.py``)."""
    inbox_sweep_seconds: float = Field(default=10.0, gt=0)
    report_lease_seconds: float = Field(default=15.0, gt=0)
    """A reporter renders the runs whose lease it holds; another takes a run over this long
    after its holder stopped renewing (died)."""

    # --- Slack ----------------------------------------------------------------------------
    slack_signing_secret: SecretStr | None = None
    """Verifies Events API deliveries at ``/slack/events`` (mounted only when set)."""
    slack_bot_token: SecretStr | None = None
    """Single workspace: the app's bot token (``xoxb-…``)."""
    slack_app_token: SecretStr | None = None
    """Socket Mode (no public URL needed): the app-level token (``xapp-…``); the web process connects out."""
    slack_client_id: str | None = None
    slack_client_secret: SecretStr | None = None
    """Multi-workspace: Slack OAuth install at ``/slack/install``; installations are kept in the store."""
    slack_api_url: str = "https://slack.com/api/"
    slack_files_max: int = Field(default=5, ge=0)
    """Files shared in a thread given to its run (downloaded with ``files:read``); the rest are named."""
    slack_file_max_bytes: int = Field(default=10 * 1024 * 1024, ge=0)
    # --- Linear ---------------------------------------------------------------------------
    linear_webhook_secret: SecretStr | None = None
    """Verifies deliveries at ``/linear/webhook`` (mounted only when set)."""
    linear_access_token: SecretStr | None = None
    """A fixed token for every Linear call (a personal API key, or a token made elsewhere); it is
    never renewed — prefer the app's client credentials below."""
    linear_client_id: str | None = None
    linear_client_secret: SecretStr | None = None
    """The Linear app's OAuth credentials: the gateway requests its client-credentials token
    (``actor=app``) and renews it before its 30 days run out (``bots/linear/tokens.py``); with
    them an admin can also install the app in more workspaces at ``/linear/install``."""
    linear_authorize_url: str = "https://linear.app/oauth/authorize"
    linear_token_url: str = "https://api.linear.app/oauth/token"
    linear_api_url: str = "https://api.linear.app/graphql"
    linear_app_user_id: str | None = None
    """The app's user id in the workspace; read from ``viewer`` when unset."""

    host_name: str | None = None
    """This host's name as runs record it (the console and API show which host ran what); the
    machine's hostname when unset.  Give each worker host its own when several share one store."""
    gateway_id: str | None = None
    """Names this gateway's containers (label ``oz.gateway``) so sweeps never touch another
    gateway's on a shared Docker engine; derived from the store's URL when unset."""

    @model_validator(mode="after")
    def _shared_token_only_locally(self) -> Settings:
        if self.github_token is not None and not self.local_mode:
            raise ValueError(
                "OZGW_GITHUB_TOKEN is for the GitHub Action's local mode only: on a server it would act on GitHub "
                "as one identity for every person and cloud agent. Unset it; runs then use each person's GitHub "
                "authorization (`oz-gateway github authorize`) or the GitHub App (OZGW_GITHUB_APP_ID)"
            )
        return self

    @property
    def console_url(self) -> str:
        """Where a person sets things up (integrations, keys, GitHub authorization)."""
        return f"{self.effective_public_url}/console"

    def run_page(self, run_id: str) -> str:
        """A run's page in the console: the link every surface hands to people (a browser page
        after sign-in, never a JSON endpoint that needs a bearer key)."""
        return f"{self.console_url}/runs/{run_id}"

    @property
    def redis_prefix(self) -> str:
        """Namespace of this gateway's own Redis keys (dedupe claims, post-once guards); the queue
        name tells gateways sharing one Redis apart."""
        return redis_prefix(self.queue_name)

    @property
    def effective_gateway_id(self) -> str:
        return self.gateway_id or hashlib.sha256(self.effective_database_url.encode()).hexdigest()[:16]

    @property
    def effective_host_name(self) -> str:
        return self.host_name or socket.gethostname()

    @property
    def effective_workspace_size(self) -> int:
        if self.workspace_size is not None:
            return int(self.workspace_size)
        return 10 * 1024**3 if os.geteuid() == 0 else 0

    @property
    def effective_work_dir(self) -> Path:
        """Beside the data directory, never inside it: that one holds the keys and the store."""
        data = self.data_dir.resolve()
        return (self.work_dir or data.parent / f"{data.name}-work").resolve()

    def app_private_key(self) -> str | None:
        if self.github_app_private_key is None:
            return None
        value = self.github_app_private_key.get_secret_value()
        return Path(value[1:]).read_text() if value.startswith("@") else value

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'oz-gateway.db').resolve()}"

    def signing_key(self) -> bytes:
        """The secret key, or one generated once and kept (0600) in ``data_dir``."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        return persistent_secret(self.data_dir / "secret_key", lambda: secrets.token_urlsafe(48).encode())

    @property
    def effective_redis_url(self) -> str:
        return self.redis_url or "redis://127.0.0.1:6379/0"

    @property
    def effective_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


def persistent_secret(path: Path, generate: Callable[[], bytes]) -> bytes:
    """Read a generated secret from ``path``, creating it first if needed.

    Several processes start at once (``up``): the file is written under a temporary name and
    hard-linked into place, so a reader never sees half a key and a second creator simply
    reads the first one's.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(generate())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process won; use its key
        finally:
            temporary.unlink(missing_ok=True)
    return path.read_bytes().strip()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def redis_prefix(queue_name: str) -> str:
    """The Redis namespace of the gateway whose run queue is ``queue_name``."""
    return f"oz:{queue_name}:"
