"""SQLAlchemy tables of the store.  Alembic migrations in ``migrations/`` create them.

Times are stored as naive UTC (:class:`UTCDateTime`) so SQLite and PostgreSQL compare and
sort them the same way, which cursor pagination depends on.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, naive UTC on disk."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware UTC")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict: JSON, list: JSON}


class TeamRow(Base):
    __tablename__ = "teams"
    uid: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime]


class AccountRow(Base):
    __tablename__ = "accounts"
    uid: Mapped[str] = mapped_column(String(32), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    team_uid: Mapped[str] = mapped_column(ForeignKey("teams.uid"), index=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    removed_at: Mapped[datetime | None]
    """Removed: no keys, links, GitHub authorization or personal secrets; its runs stay."""


class AgentRow(Base):
    __tablename__ = "agent_identities"
    uid: Mapped[str] = mapped_column(String(32), primary_key=True)
    team_uid: Mapped[str] = mapped_column(ForeignKey("teams.uid"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str | None] = mapped_column(Text)
    prompt: Mapped[str | None] = mapped_column(Text)
    base_model: Mapped[str | None] = mapped_column(String(200))
    base_harness: Mapped[str | None] = mapped_column(String(50))
    environment_id: Mapped[str | None] = mapped_column(String(32))
    on_behalf_of_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]


class ApiKeyRow(Base):
    __tablename__ = "api_keys"
    uid: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    team_uid: Mapped[str] = mapped_column(ForeignKey("teams.uid"))
    account_uid: Mapped[str] = mapped_column(ForeignKey("accounts.uid"))
    agent_uid: Mapped[str | None] = mapped_column(ForeignKey("agent_identities.uid"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]


class EnvironmentRow(Base):
    __tablename__ = "environments"
    uid: Mapped[str] = mapped_column(String(32), primary_key=True)
    team_uid: Mapped[str] = mapped_column(ForeignKey("teams.uid"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    docker_image: Mapped[str] = mapped_column(String(500))
    repos: Mapped[list] = mapped_column(JSON, default=list)
    setup_commands: Mapped[list] = mapped_column(JSON, default=list)
    working_dir: Mapped[str | None] = mapped_column(String(500))
    network_mode: Mapped[str | None] = mapped_column(String(32))
    egress: Mapped[list] = mapped_column(JSON, default=list)
    read_only_root: Mapped[bool] = mapped_column(default=False)
    secret_names: Mapped[list] = mapped_column(JSON, default=list)
    variables: Mapped[dict] = mapped_column(JSON, default=dict)
    description: Mapped[str | None] = mapped_column(String(240))
    creator_uid: Mapped[str | None] = mapped_column(String(32))
    last_editor_uid: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]


class RunRow(Base):
    __tablename__ = "runs"
    run_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    team_uid: Mapped[str] = mapped_column(ForeignKey("teams.uid"))
    scope_type: Mapped[str] = mapped_column(String(8))
    title: Mapped[str] = mapped_column(String(300))
    prompt: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(32))
    creator_kind: Mapped[str] = mapped_column(String(16))
    creator_uid: Mapped[str] = mapped_column(String(32))
    executor_kind: Mapped[str] = mapped_column(String(16))
    executor_uid: Mapped[str] = mapped_column(String(32))
    agent_uid: Mapped[str | None] = mapped_column(String(32))
    environment_id: Mapped[str | None] = mapped_column(String(32))
    config_name: Mapped[str | None] = mapped_column(String(200))
    model_id: Mapped[str | None] = mapped_column(String(200))
    skill_spec: Mapped[str | None] = mapped_column(String(500))
    skill_sort: Mapped[str] = mapped_column(String(501))
    """``"0" + skill_spec`` or ``"1"``: the ``agent`` sort order with skill-less runs last."""
    config: Mapped[dict] = mapped_column(JSON, default=dict)
    run_metadata: Mapped[dict] = mapped_column("metadata", JSON, default=dict)
    conversation_id: Mapped[str] = mapped_column(String(36), index=True)
    parent_run_id: Mapped[str | None] = mapped_column(String(36), index=True)
    mode: Mapped[str] = mapped_column(String(16), default="normal")
    interactive: Mapped[bool] = mapped_column(Boolean, default=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    origin: Mapped[dict | None] = mapped_column(JSON)
    trigger_url: Mapped[str | None] = mapped_column(String(2000))
    origin_key: Mapped[str | None] = mapped_column(String(300))
    """The conversation a run belongs to on its surface (a Slack thread, a Linear agent session),
    so a later message there finds the run to follow up or cancel."""
    status_message: Mapped[dict | None] = mapped_column(JSON)
    session_id: Mapped[str | None] = mapped_column(String(64))
    session_link: Mapped[str | None] = mapped_column(String(2000))
    execution_location: Mapped[str] = mapped_column(String(8), default="REMOTE")
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    run_time_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    usage: Mapped[list | None] = mapped_column(JSON)
    billed_to: Mapped[str] = mapped_column(String(32), default="")
    """The person whose budget a run draws on first (``core/budgets.py``); empty for runs the
    team pays for alone (agent-key and scheduled runs)."""
    inference_cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    compute_cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    """What the run has cost so far (``core/prices.py``): its models' tokens, its container's time."""
    schedule_uid: Mapped[str | None] = mapped_column(String(32))
    worker_host: Mapped[str] = mapped_column(String(200), default="", server_default="")
    """The host whose worker took the run last (``OZGW_HOST_NAME``); empty until one did."""
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    execution_started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    """Pushed forward by the executing job; a run whose heartbeat stops was abandoned."""

    __table_args__ = (
        UniqueConstraint("team_uid", "idempotency_key", name="uq_runs_team_idempotency"),
        # One index per list filter, each led by the team (every query is team-scoped) and
        # ending in the default sort key so a filtered page is an index range scan.
        Index("ix_runs_team_updated", "team_uid", "updated_at", "run_id"),
        Index("ix_runs_team_created", "team_uid", "created_at", "run_id"),
        Index("ix_runs_team_state_updated", "team_uid", "state", "updated_at"),
        Index("ix_runs_team_name", "team_uid", "config_name", "updated_at"),
        Index("ix_runs_team_model", "team_uid", "model_id", "updated_at"),
        Index("ix_runs_team_creator", "team_uid", "creator_uid", "updated_at"),
        Index("ix_runs_team_executor", "team_uid", "executor_uid", "updated_at"),
        Index("ix_runs_team_source", "team_uid", "source", "updated_at"),
        Index("ix_runs_team_environment", "team_uid", "environment_id", "updated_at"),
        Index("ix_runs_state_updated", "state", "updated_at"),
        Index("ix_runs_state_heartbeat", "state", "heartbeat_at"),
        Index("ix_runs_origin_key", "origin_key", "created_at"),
        Index("ix_runs_team_billed_created", "team_uid", "billed_to", "created_at"),
    )


class RunMetadataRow(Base):
    """Metadata pairs again, one row each, so ``metadata[k]=v`` filters use an index."""

    __tablename__ = "run_metadata"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))
    __table_args__ = (Index("ix_run_metadata_kv", "key", "value"),)


class RunFollowupRow(Base):
    __tablename__ = "run_followups"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"), index=True)
    message: Mapped[str] = mapped_column(Text)
    mode: Mapped[str] = mapped_column(String(16), default="normal")
    author_uid: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]


class RunAttachmentRow(Base):
    __tablename__ = "run_attachments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"), index=True)
    file_name: Mapped[str] = mapped_column(String(255))
    mime_type: Mapped[str] = mapped_column(String(100))
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ArtifactRow(Base):
    __tablename__ = "artifacts"
    uid: Mapped[str] = mapped_column(String(36), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"), index=True)
    artifact_type: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    content: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    __table_args__ = (Index("ix_artifacts_run_type", "run_id", "artifact_type"),)


class RunEventRow(Base):
    """The run's transcript: every typed event the harness produced, secrets masked."""

    __tablename__ = "run_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime]
    __table_args__ = (UniqueConstraint("run_id", "seq", name="uq_run_events_seq"),)


class GitHubAuthorizationRow(Base):
    """A person's GitHub user token, encrypted at rest (``core.vault``)."""

    __tablename__ = "github_authorizations"
    account_uid: Mapped[str] = mapped_column(ForeignKey("accounts.uid", ondelete="CASCADE"), primary_key=True)
    login: Mapped[str] = mapped_column(String(100))
    token_encrypted: Mapped[str] = mapped_column(Text)
    refresh_token_encrypted: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None]
    stale: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class EnabledGitHubOrgRow(Base):
    """An organization whose GitHub App installation the team's agent runs may use."""

    __tablename__ = "team_github_orgs"
    team_uid: Mapped[str] = mapped_column(ForeignKey("teams.uid", ondelete="CASCADE"), primary_key=True)
    org: Mapped[str] = mapped_column(String(100), primary_key=True)
    created_at: Mapped[datetime]


class GitHubInstallationRow(Base):
    """The App's installations as its webhooks describe them, so the scope stays current."""

    __tablename__ = "github_installations"
    installation_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    account_login: Mapped[str] = mapped_column(String(100), index=True)
    repository_selection: Mapped[str] = mapped_column(String(16))
    repositories: Mapped[list] = mapped_column(JSON, default=list)
    suspended: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime]


class ManagedSecretRow(Base):
    """A team secret (``account_uid`` empty) or a person's own; the value is encrypted."""

    __tablename__ = "managed_secrets"
    uid: Mapped[str] = mapped_column(String(32), primary_key=True)
    team_uid: Mapped[str] = mapped_column(ForeignKey("teams.uid", ondelete="CASCADE"))
    account_uid: Mapped[str] = mapped_column(String(32), default="")
    name: Mapped[str] = mapped_column(String(128))
    value_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    __table_args__ = (UniqueConstraint("team_uid", "account_uid", "name", name="uq_managed_secret_name"),)


class IntegrationRow(Base):
    """A team's Slack / Linear / GitHub integration and the run defaults it applies."""

    __tablename__ = "integrations"
    uid: Mapped[str] = mapped_column(String(32), primary_key=True)
    team_uid: Mapped[str] = mapped_column(ForeignKey("teams.uid", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(16))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    environment_id: Mapped[str | None] = mapped_column(String(32))
    custom_prompt: Mapped[str | None] = mapped_column(Text)
    model_id: Mapped[str | None] = mapped_column(String(200))
    mcp_servers: Mapped[dict] = mapped_column(JSON, default=dict)
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    __table_args__ = (UniqueConstraint("team_uid", "provider", name="uq_integration_team_provider"),)


class ExternalIdentityRow(Base):
    """A person's user on another service (Slack workspace + user id), linked to their account."""

    __tablename__ = "external_identities"
    provider: Mapped[str] = mapped_column(String(16), primary_key=True)
    external_team: Mapped[str] = mapped_column(String(64), primary_key=True)
    external_user: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_uid: Mapped[str] = mapped_column(ForeignKey("accounts.uid", ondelete="CASCADE"), index=True)
    linked_at: Mapped[datetime]


class LinkRequestRow(Base):
    """An unlinked person's request, kept until they link their account (single use, expiring).

    The link handed to them carries only this row's id, signed; the request itself (the
    surface's event) waits here so it can run once they have proved who they are.
    """

    __tablename__ = "link_requests"
    uid: Mapped[str] = mapped_column(String(32), primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    external_team: Mapped[str] = mapped_column(String(64))
    external_user: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


# Slack installations (multi-workspace OAuth) in slack-sdk's own schema, so its
# SQLAlchemy installation and state stores read and write them unchanged.
SLACK_INSTALLATIONS = SQLAlchemyInstallationStore.build_installations_table(Base.metadata, "slack_installations")
SLACK_BOTS = SQLAlchemyInstallationStore.build_bots_table(Base.metadata, "slack_bots")
SLACK_OAUTH_STATES = SQLAlchemyOAuthStateStore.build_oauth_states_table(Base.metadata, "slack_oauth_states")
# Tokens are stored encrypted (bots.slack.installations), which makes them longer than slack-sdk's 200.
for _table in (SLACK_INSTALLATIONS, SLACK_BOTS):
    for _column in _table.c:
        if _column.name.endswith(("_token", "_refresh_token")):
            _column.type = String(1000)


class InboxRow(Base):
    """A webhook delivery kept before it is answered (``core/inbox.py``)."""

    __tablename__ = "inbox"
    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    surface: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)
    """The delivery's JSON as text: PostgreSQL's ``json`` refuses some escapes a service may send."""
    received_at: Mapped[datetime]
    claimed_until: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    __table_args__ = (Index("ix_inbox_pending", "surface", "done_at", "received_at"),)


class ClosingPostRow(Base):
    """A run's closing post on its surface, claimed before it is posted (one per execution)."""

    __tablename__ = "closing_posts"
    run_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    attempt: Mapped[int] = mapped_column(primary_key=True)
    claimed_at: Mapped[datetime]


class LinearTokenRow(Base):
    """A Linear token the gateway renews, encrypted, and how its renewal goes: the app's
    client-credentials token (``key`` = the client id), or a workspace's OAuth install
    (``key`` = ``org:<organization id>``, with its rotating refresh token and the app's user there)."""

    __tablename__ = "linear_tokens"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    access_token_encrypted: Mapped[str | None] = mapped_column(Text)
    refresh_token_encrypted: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None]
    renewed_at: Mapped[datetime | None]
    renewing_until: Mapped[datetime | None]
    failing_since: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    organization_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    organization_name: Mapped[str | None] = mapped_column(String(200))
    url_key: Mapped[str | None] = mapped_column(String(100))
    app_user_id: Mapped[str | None] = mapped_column(String(64))
    installed_at: Mapped[datetime | None]


class BudgetRow(Base):
    """A monthly spending limit: the team's (``account_uid`` empty) or one person's."""

    __tablename__ = "budgets"
    team_uid: Mapped[str] = mapped_column(ForeignKey("teams.uid", ondelete="CASCADE"), primary_key=True)
    account_uid: Mapped[str] = mapped_column(String(32), primary_key=True, default="")
    monthly_usd: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime]


class ScheduleRow(Base):
    """A cron schedule that starts a run each time it fires (``core/schedules.py``)."""

    __tablename__ = "schedules"
    uid: Mapped[str] = mapped_column(String(32), primary_key=True)
    team_uid: Mapped[str] = mapped_column(ForeignKey("teams.uid", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    cron: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    prompt: Mapped[str | None] = mapped_column(Text)
    skill_spec: Mapped[str | None] = mapped_column(String(500))
    environment_id: Mapped[str] = mapped_column(String(32))
    agent_uid: Mapped[str | None] = mapped_column(String(32))
    model_id: Mapped[str | None] = mapped_column(String(200))
    creator_uid: Mapped[str] = mapped_column(String(32))
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    paused_reason: Mapped[str | None] = mapped_column(String(1000))
    next_fire_at: Mapped[datetime] = mapped_column(index=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]


class ScheduleFireRow(Base):
    """One fire time of a schedule, claimed before its run is created: the primary key is what
    makes firing exactly-once when several scheduler processes run."""

    __tablename__ = "schedule_fires"
    schedule_uid: Mapped[str] = mapped_column(ForeignKey("schedules.uid", ondelete="CASCADE"), primary_key=True)
    fire_time: Mapped[datetime] = mapped_column(primary_key=True)
    claimed_at: Mapped[datetime]
    run_id: Mapped[str | None] = mapped_column(String(36))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(String(1000))
