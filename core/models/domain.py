"""Our own records: who people are, what they configured, and where a run reports back.

These never go on the wire as-is; ``core.runs`` and the API render them into the Oz shapes
in ``core.models.wire``.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.models.wire import AmbientAgentConfig, ModelUsage, RunSourceType, RunState, StatusMessage
from core.network import NetworkMode, parse_endpoints

REPO_SPEC = re.compile(r"^(?P<owner>[A-Za-z0-9_.-]+)/(?P<repo>[A-Za-z0-9_.-]+)(?:@(?P<branch>[^\s@]+))?$")
ENVIRONMENT_DESCRIPTION_MAX = 240


class Record(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=False)


class Team(Record):
    uid: str
    name: str
    created_at: datetime


class Account(Record):
    uid: str
    email: str
    display_name: str | None = None
    team_uid: str
    is_admin: bool = False
    """Admins change what the whole team relies on: integrations, cloud agents, team secrets."""
    created_at: datetime


class AgentIdentity(Record):
    """A cloud agent (service account) of a team; every team has one undeletable default."""

    uid: str
    team_uid: str
    name: str
    is_default: bool
    available: bool = True
    description: str | None = None
    prompt: str | None = None
    base_model: str | None = None
    base_harness: str | None = None
    environment_id: str | None = None
    on_behalf_of_enabled: bool = False
    settings: dict = {}
    created_at: datetime
    updated_at: datetime


class KeyKind(StrEnum):
    PERSONAL = "personal"
    AGENT = "agent"


KEY_EXPIRIES: dict[str, int | None] = {"1d": 1, "30d": 30, "90d": 90, "never": None}


class ApiKey(Record):
    """A stored key: only its hash and a short display prefix are ever kept."""

    uid: str
    name: str
    kind: KeyKind
    team_uid: str
    account_uid: str
    agent_uid: str | None = None
    prefix: str
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    created_at: datetime
    last_used_at: datetime | None = None


class Principal(Record):
    """Who is calling: a person (personal key) or a cloud agent (agent key) of one team."""

    kind: Literal["user", "service_account"]
    uid: str
    team_uid: str
    email: str | None = None
    display_name: str | None = None
    key_uid: str | None = None
    on_behalf_of_enabled: bool = False

    @property
    def is_human(self) -> bool:
        return self.kind == "user"


class RepoRef(Record):
    owner: str
    repo: str
    branch: str | None = None

    @classmethod
    def parse(cls, spec: str) -> RepoRef:
        """``owner/repo`` or ``owner/repo@branch`` — the Oz CLI's ``--repo`` form."""
        match = REPO_SPEC.match(spec.strip())
        if not match or {match["owner"], match["repo"]} & {".", ".."}:
            raise ValueError(f"repo {spec!r} must look like owner/repo or owner/repo@branch")
        return cls(**match.groupdict())

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.repo}"

    def __str__(self) -> str:
        return self.full_name + (f"@{self.branch}" if self.branch else "")


def add_usage(*groups: list[ModelUsage]) -> list[ModelUsage]:
    """Usage lists merged per model, in the order models first appeared."""
    merged: dict[str, ModelUsage] = {}
    for group in groups:
        for usage in group:
            merged[usage.model] = merged[usage.model].plus(usage) if usage.model in merged else usage
    return list(merged.values())


VARIABLE_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
RESERVED_VARIABLES = ("OZ_", "PATH", "HOME", "USER", "HOSTNAME", "LD_")
"""Names an environment may not set: the gateway's own ``OZ_*`` and what the image decides."""


class Environment(Record):
    """Where a run executes: image, repos cloned into the workspace, setup commands."""

    uid: str
    team_uid: str
    name: Annotated[str, Field(min_length=1, max_length=100)]
    docker_image: Annotated[str, Field(min_length=1)]
    repos: list[RepoRef] = []
    setup_commands: list[str] = []
    working_dir: str | None = None
    network_mode: NetworkMode | None = None
    egress: list[str] = []
    """``host[:port]`` endpoints an ``egress`` container may reach besides the model API (package
    registries, a model gateway); port 443 unless given."""
    read_only_root: bool = False
    """The container's root filesystem is read-only; only ``/workspace``, ``/tmp``, ``/var/tmp``
    and the home directories (copied from the image) are writable, all on the run's own
    filesystem.  Setup commands cannot install packages then."""
    secret_names: list[str] = []
    """Managed secrets injected into this environment's containers (as environment variables)."""
    variables: dict[str, str] = {}
    """Plain (not secret) environment variables of its containers: a model gateway's base URL
    (``ANTHROPIC_BASE_URL``, ``OPENAI_BASE_URL``, ``GOOGLE_GEMINI_BASE_URL``), a proxy."""
    description: Annotated[str, Field(max_length=ENVIRONMENT_DESCRIPTION_MAX)] | None = None
    creator_uid: str | None = None
    last_editor_uid: str | None = None
    created_at: datetime
    updated_at: datetime

    @field_validator("setup_commands")
    @classmethod
    def _no_blank_commands(cls, value: list[str]) -> list[str]:
        if any(not c.strip() for c in value):
            raise ValueError("setup commands must not be blank")
        return value

    @field_validator("egress")
    @classmethod
    def _valid_egress(cls, value: list[str]) -> list[str]:
        return [str(e) for e in parse_endpoints(value)]

    @field_validator("variables")
    @classmethod
    def _valid_variables(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not re.match(VARIABLE_NAME, name) or name.upper().startswith(RESERVED_VARIABLES):
                raise ValueError(f"{name!r} cannot be set: names are letters, digits and _, not OZ_*, PATH or HOME")
            if len(text) > 4096 or "\0" in text:
                raise ValueError(f"the value of {name} is too long (4096 characters at most)")
        return value


class IntegrationProvider(StrEnum):
    SLACK = "slack"
    LINEAR = "linear"
    GITHUB = "github"


class Integration(Record):
    """A team's connection to Slack / Linear / GitHub and the run defaults it applies."""

    uid: str
    team_uid: str
    provider: IntegrationProvider
    enabled: bool = True
    environment_id: str | None = None
    custom_prompt: str | None = None
    model_id: str | None = None
    mcp_servers: dict = {}
    settings: dict = {}
    created_at: datetime
    updated_at: datetime


class ExternalIdentity(Record):
    """A person's account on another service, linked to their gateway account."""

    provider: IntegrationProvider
    external_team: str
    external_user: str
    account_uid: str
    linked_at: datetime


class Origin(Record):
    """Where a run came from and therefore where its reporter writes back.

    ``ref`` holds the surface's own coordinates (Slack channel + thread ts, Linear agent
    session id, GitHub repo + issue number); ``core`` never interprets them.
    """

    source: RunSourceType
    trigger_url: str | None = None
    ref: dict[str, str] = {}
    key: str | None = None
    """The conversation on the surface (``slack:<team>:<channel>:<thread_ts>``); later messages
    in it find the run through :func:`core.runs.latest_for_origin`."""


class Run(Record):
    """The full stored run; ``core.runs.to_item`` renders the Oz ``RunItem`` from it."""

    run_id: str
    team_uid: str
    scope_type: Literal["User", "Team"]
    title: str
    prompt: str
    state: RunState
    source: RunSourceType
    creator_kind: Literal["user", "service_account"]
    creator_uid: str
    executor_kind: Literal["user", "service_account"]
    executor_uid: str
    agent_uid: str | None = None
    environment_id: str | None = None
    config_name: str | None = None
    model_id: str | None = None
    skill_spec: str | None = None
    config: AmbientAgentConfig = AmbientAgentConfig()
    metadata: dict[str, str] = {}
    conversation_id: str
    parent_run_id: str | None = None
    mode: str = "normal"
    interactive: bool = False
    idempotency_key: str | None = None
    origin: Origin | None = None
    status_message: StatusMessage | None = None
    session_id: str | None = None
    session_link: str | None = None
    execution_location: Literal["LOCAL", "REMOTE"] = "REMOTE"
    attempt: int = 0
    run_time_seconds: float = 0.0
    usage: list[ModelUsage] = []
    billed_to: str = ""
    inference_cost_usd: float = 0.0
    compute_cost_usd: float = 0.0
    schedule_uid: str | None = None
    worker_host: str = ""
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    execution_started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None
