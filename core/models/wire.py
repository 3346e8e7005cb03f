"""Pydantic models whose JSON is the Oz REST API, as typed by ``oz-agent-sdk`` 0.15.

The SDK's type definitions are the wire contract: field names, optionality and enums here
follow them exactly so that the official client parses what we send.  Request models
validate (and reject) input; response models only describe output.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.errors import ErrorCode


class RunState(StrEnum):
    """Lifecycle of a run; ``core.runs`` owns the legal transitions between these."""

    QUEUED = "QUEUED"
    PENDING = "PENDING"
    CLAIMED = "CLAIMED"
    INPROGRESS = "INPROGRESS"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    BLOCKED = "BLOCKED"
    ERROR = "ERROR"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.ERROR, RunState.CANCELLED})
ACTIVE_STATES = frozenset(set(RunState) - TERMINAL_STATES)
EXECUTING_STATES = frozenset({RunState.PENDING, RunState.CLAIMED, RunState.INPROGRESS})
"""A worker has the run: its heartbeat says whether that worker is still alive."""
SANDBOX_STATES = frozenset({RunState.CLAIMED, RunState.INPROGRESS, RunState.BLOCKED})
"""The run's container exists: its time counts (run time, compute cost)."""


class RunSourceType(StrEnum):
    LINEAR = "LINEAR"
    API = "API"
    SLACK = "SLACK"
    LOCAL = "LOCAL"
    SCHEDULED_AGENT = "SCHEDULED_AGENT"
    WEB_APP = "WEB_APP"
    GITHUB_ACTION = "GITHUB_ACTION"
    CLOUD_MODE = "CLOUD_MODE"
    CLI = "CLI"
    JIRA = "JIRA"
    SELF_IMPROVEMENT = "SELF_IMPROVEMENT"
    GITHUB_WEBHOOK = "GITHUB_WEBHOOK"
    GITLAB_WEBHOOK = "GITLAB_WEBHOOK"
    AUTOFIX = "AUTOFIX"
    RUN_SCORER = "RUN_SCORER"
    ORCHESTRATION = "ORCHESTRATION"


class WireModel(BaseModel):
    """Output models: serialise by field name, drop ``None`` so optional fields stay absent."""

    model_config = ConfigDict(populate_by_name=True)

    def wire(self) -> dict:
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)


class RequestModel(BaseModel):
    """Input models: unknown fields are tolerated (newer clients), wrong types are not."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)


# --- shared pieces -----------------------------------------------------------------------


class UserProfile(WireModel):
    display_name: str | None = None
    email: str | None = None
    photo_url: str | None = None
    type: Literal["user", "service_account"] | None = None
    uid: str | None = None


class Scope(WireModel):
    type: Literal["User", "Team"]
    uid: str | None = None


class StatusMessage(WireModel):
    message: str
    error_code: ErrorCode | None = None
    retryable: bool | None = None


class PageInfo(WireModel):
    has_next_page: bool
    next_cursor: str | None = None


# --- agent configuration -------------------------------------------------------------------


class McpServerConfig(RequestModel, WireModel):
    """One MCP server: exactly one of ``warp_id``, ``command`` or ``url``."""

    model_config = ConfigDict(extra="ignore")

    args: list[str] | None = None
    command: str | None = None
    env: dict[str, str] | None = None
    headers: dict[str, str] | None = None
    url: str | None = None
    warp_id: str | None = None

    @model_validator(mode="after")
    def _exactly_one_transport(self) -> McpServerConfig:
        given = [k for k in ("warp_id", "command", "url") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("an MCP server needs exactly one of warp_id, command or url")
        return self


class Harness(RequestModel, WireModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    type: Literal["oz", "claude", "gemini", "codex"] | None = None
    model_id: str | None = None
    reasoning_level: str | None = None


class HarnessAuthSecrets(RequestModel, WireModel):
    claude_auth_secret_name: str | None = None
    codex_auth_secret_name: str | None = None


class AmbientAgentConfig(RequestModel, WireModel):
    """The run configuration, both as accepted on create and as echoed on a run."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, protected_namespaces=())

    base_prompt: str | None = None
    computer_use_enabled: bool | None = None
    credential_strategy: Literal["CREATOR", "EXECUTOR"] | None = None
    environment_id: str | None = None
    harness: Harness | None = None
    harness_auth_secrets: HarnessAuthSecrets | None = None
    idle_timeout_minutes: Annotated[int, Field(ge=0, le=60)] | None = None
    max_cost: Annotated[float, Field(gt=0)] | None = None
    """Extension: the most this run may cost, in USD (``core/prices.py``); it is stopped
    ``FAILED`` / ``budget_exceeded`` when it crosses it."""
    mcp_servers: dict[str, McpServerConfig] | None = None
    model_id: str | None = None
    name: Annotated[str, Field(max_length=200)] | None = None
    runner_id: str | None = None
    skill_spec: str | None = None
    skills: list[str] | None = None
    worker_host: str | None = None

    @model_validator(mode="after")
    def _skill_forms_exclusive(self) -> AmbientAgentConfig:
        if self.skill_spec and self.skills:
            raise ValueError("config.skill_spec and config.skills are mutually exclusive")
        return self


# --- runs ----------------------------------------------------------------------------------

METADATA_KEY = re.compile(r"^[a-zA-Z0-9._-]{1,64}$")
MAX_METADATA_KEYS = 20
MAX_ATTACHMENTS = 5
ATTACHMENT_MIME_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


def check_metadata(metadata: dict[str, str]) -> dict[str, str]:
    """Apply the SDK's metadata rules; the message names the offending key."""
    if len(metadata) > MAX_METADATA_KEYS:
        raise ValueError(f"metadata has {len(metadata)} keys; at most {MAX_METADATA_KEYS} are allowed")
    for key, value in metadata.items():
        if not METADATA_KEY.match(key) or len(key.encode()) > 64:
            raise ValueError(f"metadata key {key!r} must be 1-64 bytes of [a-zA-Z0-9._-]")
        if not isinstance(value, str):
            raise ValueError(f"metadata value for {key!r} must be a string")
        if len(value.encode()) > 256:
            raise ValueError(f"metadata value for {key!r} is longer than 256 bytes")
        if "\x00" in value:
            raise ValueError(f"metadata value for {key!r} contains a NUL character")
    return metadata


class Attachment(RequestModel):
    data: str
    file_name: Annotated[str, Field(min_length=1, max_length=255)]
    mime_type: str

    @field_validator("mime_type")
    @classmethod
    def _supported_type(cls, value: str) -> str:
        if value not in ATTACHMENT_MIME_TYPES:
            raise ValueError(f"unsupported attachment type {value!r}; use one of {sorted(ATTACHMENT_MIME_TYPES)}")
        return value


class RunAgentRequest(RequestModel):
    """Body of ``POST /agent/runs`` (``AgentRunParams``)."""

    agent_identity_uid: str | None = None
    attachments: list[Attachment] | None = None
    config: AmbientAgentConfig | None = None
    conversation_id: str | None = None
    interactive: bool | None = None
    metadata: dict[str, str] | None = None
    mode: Literal["normal", "plan", "orchestrate"] | None = None
    on_behalf_of: str | None = None
    parent_run_id: str | None = None
    prompt: str | None = None
    skill: str | None = None
    team: bool | None = None
    title: Annotated[str, Field(max_length=300)] | None = None

    @field_validator("metadata")
    @classmethod
    def _metadata_rules(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return None if value is None else check_metadata(value)

    @field_validator("attachments")
    @classmethod
    def _attachment_count(cls, value: list[Attachment] | None) -> list[Attachment] | None:
        if value is not None and len(value) > MAX_ATTACHMENTS:
            raise ValueError(f"{len(value)} attachments given; at most {MAX_ATTACHMENTS} are allowed")
        return value

    @model_validator(mode="after")
    def _prompt_or_skill(self) -> RunAgentRequest:
        has_skill = bool(self.skill or (self.config and (self.config.skill_spec or self.config.skills)))
        if not (self.prompt and self.prompt.strip()) and not has_skill and not self.conversation_id:
            raise ValueError("prompt is required unless a skill is given (skill, config.skill_spec or config.skills)")
        return self


class RunAgentResponse(WireModel):
    run_id: str
    state: RunState
    task_id: str
    at_capacity: bool | None = None


class FollowupRequest(RequestModel):
    message: Annotated[str, Field(min_length=1)]
    mode: Literal["normal", "plan", "orchestrate"] | None = None

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("message must not be blank")
        return value


class PullRequestArtifactData(WireModel):
    branch: str
    url: str


class PullRequestArtifact(WireModel):
    artifact_type: Literal["PULL_REQUEST"] = "PULL_REQUEST"
    created_at: datetime
    data: PullRequestArtifactData


class FileArtifactData(WireModel):
    artifact_uid: str
    filename: str
    filepath: str
    mime_type: str
    description: str | None = None
    size_bytes: int | None = None
    title: str | None = None


class FileArtifact(WireModel):
    artifact_type: Literal["FILE"] = "FILE"
    created_at: datetime
    data: FileArtifactData


class PlanArtifactData(WireModel):
    document_uid: str
    artifact_uid: str | None = None
    notebook_uid: str | None = None
    title: str | None = None
    url: str | None = None


class PlanArtifact(WireModel):
    artifact_type: Literal["PLAN"] = "PLAN"
    created_at: datetime
    data: PlanArtifactData


class ExternalReferenceArtifactData(WireModel):
    reference_type: str
    url: str
    metadata: dict[str, object] | None = None
    title: str | None = None


class ExternalReferenceArtifact(WireModel):
    artifact_type: Literal["EXTERNAL_REFERENCE"] = "EXTERNAL_REFERENCE"
    created_at: datetime
    data: ExternalReferenceArtifactData


ArtifactItem = Annotated[
    PullRequestArtifact | FileArtifact | PlanArtifact | ExternalReferenceArtifact,
    Field(discriminator="artifact_type"),
]
ArtifactType = Literal["PLAN", "PULL_REQUEST", "SCREENSHOT", "FILE", "EXTERNAL_REFERENCE"]


class FileArtifactResponseData(WireModel):
    content_type: str
    download_url: str
    expires_at: datetime
    filename: str
    description: str | None = None
    filepath: str | None = None
    size_bytes: int | None = None
    title: str | None = None


class FileArtifactResponse(WireModel):
    artifact_type: Literal["FILE"] = "FILE"
    artifact_uid: str
    created_at: datetime
    data: FileArtifactResponseData


class AgentSkill(WireModel):
    bundled_skill_id: str | None = None
    description: str | None = None
    full_path: str | None = None
    name: str | None = None


class RequestUsage(WireModel):
    """The SDK's resource usage of a run; the gateway knows inference cost only where the agent
    CLI reports one (credits are Warp's, so only the ``*_usd`` fields are ever set)."""

    compute_cost: float | None = None
    compute_cost_usd: float | None = None
    inference_cost: float | None = None
    inference_cost_usd: float | None = None
    platform_cost: float | None = None
    platform_cost_usd: float | None = None


class ModelUsage(WireModel):
    """What one model cost a run, as the agent CLI reported it (summed over its turns); our
    extension to ``RunItem`` (``usage``)."""

    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost_usd: float | None = None
    """Only where the CLI reports a cost (Claude Code does)."""
    priced_usd: float | None = None
    """What these tokens cost by the operator's price table (``core/prices.py``), set when the
    run's usage is recorded; the run's inference cost is the sum of these."""

    def plus(self, other: ModelUsage) -> ModelUsage:
        costs = [c for c in (self.cost_usd, other.cost_usd) if c is not None]
        return ModelUsage(
            model=self.model,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cached_input_tokens=self.cached_input_tokens + other.cached_input_tokens,
            cost_usd=sum(costs) if costs else None,
        )  # ``priced_usd`` is recomputed from the summed tokens (core.prices)


class RunItem(WireModel):
    created_at: datetime
    prompt: str
    run_id: str
    state: RunState
    task_id: str
    title: str
    updated_at: datetime
    agent_config: AmbientAgentConfig | None = None
    agent_skill: AgentSkill | None = None
    artifacts: list[ArtifactItem] | None = None
    conversation_id: str | None = None
    creator: UserProfile | None = None
    execution_location: Literal["LOCAL", "REMOTE"] | None = None
    executor: UserProfile | None = None
    is_run_type_cancellable: bool | None = None
    is_sandbox_running: bool | None = None
    metadata: dict[str, str] | None = None
    parent_run_id: str | None = None
    run_time: str | None = None
    scope: Scope | None = None
    session_id: str | None = None
    session_link: str | None = None
    source: RunSourceType | None = None
    started_at: datetime | None = None
    status_message: StatusMessage | None = None
    trigger_url: str | None = None
    request_usage: RequestUsage | None = None
    usage: list[ModelUsage] | None = None
    """Extension: tokens per model (absent until the agent reported any)."""
    queue_position: int | None = None
    """Extension: a QUEUED run's place in line (1: next to start)."""
    worker_host: str | None = None
    """Extension: the host whose worker executes (or executed) the run."""


class ListRunsResponse(WireModel):
    runs: list[RunItem]
    page_info: PageInfo


RunSortBy = Literal["updated_at", "created_at", "title", "agent"]


class RunListQuery(RequestModel):
    """Query of ``GET /agent/runs``; list-valued parameters arrive repeated (``state=A&state=B``)."""

    state: list[RunState] = []
    name: str | None = None
    config_name: str | None = None
    model_id: str | None = None
    creator: str | None = None
    executor: str | None = None
    source: RunSourceType | None = None
    environment_id: str | None = None
    execution_location: Literal["LOCAL", "REMOTE"] | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    updated_after: datetime | None = None
    skill_spec: str | None = None
    skill: str | None = None
    ancestor_run_id: str | None = None
    artifact_type: ArtifactType | None = None
    q: Annotated[str, Field(max_length=200)] | None = None
    metadata: dict[str, str] = {}
    cursor: str | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 20
    sort_by: RunSortBy = "updated_at"
    sort_order: Literal["asc", "desc"] = "desc"

    @field_validator("metadata")
    @classmethod
    def _metadata_filter(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > 5:
            raise ValueError("at most 5 metadata pairs may be used as a filter")
        return check_metadata(value)


# --- environments --------------------------------------------------------------------------


class GitHubRepo(WireModel):
    owner: str
    repo: str


class CloudEnvironmentConfig(WireModel):
    description: str | None = None
    docker_image: str | None = None
    github_repos: list[GitHubRepo] | None = None
    name: str | None = None
    setup_commands: list[str] | None = None


class CloudEnvironment(WireModel):
    config: CloudEnvironmentConfig
    last_updated: datetime
    setup_failed: bool
    uid: str
    creator: UserProfile | None = None
    last_editor: UserProfile | None = None
    last_task_run_timestamp: datetime | None = None
    scope: Scope | None = None


class ListEnvironmentsResponse(WireModel):
    environments: list[CloudEnvironment]


# --- cloud agents (agent identities) -----------------------------------------------------


class SecretRef(RequestModel, WireModel):
    name: Annotated[str, Field(min_length=1, max_length=128)]


class AgentMemoryAutoMemory(WireModel):
    enabled: bool


class AgentMemory(WireModel):
    attached_stores: list[dict] = []
    auto_memory: AgentMemoryAutoMemory = AgentMemoryAutoMemory(enabled=False)


AgentType = Literal["FOREMAN", "TRIAGE", "SPEC", "IMPLEMENT", "REVIEW", "VERIFY", "CUSTOM"]


class AgentUpdateRequest(RequestModel):
    """Omitted fields stay unchanged; empty strings or arrays clear them (as the reference says)."""

    name: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    agent_type: AgentType | None = None
    base_harness: str | None = None
    base_model: str | None = None
    credential_strategy: Literal["CREATOR", "EXECUTOR"] | None = None
    default_runner_uid: str | None = None
    description: Annotated[str, Field(max_length=1000)] | None = None
    environment_id: str | None = None
    harness: Harness | None = None
    mcp_servers: dict[str, McpServerConfig] | None = None
    on_behalf_of_enabled: bool | None = None
    prompt: str | None = None
    secrets: list[SecretRef] | None = None
    skills: list[str] | None = None
    worker_host: str | None = None

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("name must not be blank")
        return value.strip() if value else value

    @field_validator("secrets")
    @classmethod
    def _unique_secret_names(cls, value: list[SecretRef] | None) -> list[SecretRef] | None:
        if value and len({s.name for s in value}) != len(value):
            raise ValueError("secret names must be unique")
        return value


class AgentCreateRequest(AgentUpdateRequest):
    name: Annotated[str, Field(min_length=1, max_length=100)]


class AgentResponse(WireModel):
    available: bool
    created_at: datetime
    default_runner_uid: str
    memory: AgentMemory
    name: str
    secrets: list[SecretRef]
    skills: list[str]
    uid: str
    updated_at: datetime
    agent_type: AgentType | None = None
    base_harness: str | None = None
    base_model: str | None = None
    credential_strategy: Literal["CREATOR", "EXECUTOR"] | None = None
    description: str | None = None
    environment_id: str | None = None
    harness: Harness | None = None
    mcp_servers: dict[str, McpServerConfig] | None = None
    on_behalf_of_enabled: bool | None = None
    prompt: str | None = None
    worker_host: str | None = None


class ListAgentIdentitiesResponse(WireModel):
    agents: list[AgentResponse]
