"""The Linear webhook events the front door acts on, one pydantic model each.

Only what the handler reads is declared (everything else is kept, ``extra="allow"``); a field
is required only when the event means nothing without it, so Linear adding or dropping an
optional field never turns a good delivery into a refusal.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Person(_Model):
    id: str | None = None
    email: str | None = None
    type: str | None = None
    """``user`` for a person; integrations and apps act as other types."""


class Text(_Model):
    id: str | None = None
    body: str | None = None


class Titled(_Model):
    id: str | None = None
    title: str = ""


class LinearEvent(_Model):
    """What every delivery carries."""

    type: str
    action: str
    organization_id: str | None = Field(None, alias="organizationId")
    app_user_id: str | None = Field(None, alias="appUserId")
    oauth_client_id: str | None = Field(None, alias="oauthClientId")


# --- Agents API ------------------------------------------------------------------------------


class AgentSession(_Model):
    id: str
    issue_id: str = Field(alias="issueId")
    comment_id: str | None = Field(None, alias="commentId")
    creator_id: str | None = Field(None, alias="creatorId")
    creator: Person | None = None
    comment: Text | None = None
    issue: Titled = Titled()


class AgentActivity(_Model):
    id: str | None = None
    user_id: str | None = Field(None, alias="userId")
    signal: str | None = None
    content: Text = Text()


class AgentSessionEvent(LinearEvent):
    agent_session: AgentSession = Field(alias="agentSession")
    guidance: list[Text] = []
    prompt_context: str | None = Field(None, alias="promptContext")
    previous_comments: list[Text] = Field([], alias="previousComments")
    agent_activity: AgentActivity | None = Field(None, alias="agentActivity")
    """On ``prompted``: what the person said (or the stop signal)."""

    @property
    def guidance_texts(self) -> list[str]:
        return [g.body for g in self.guidance if g.body]


# --- the classic webhooks ---------------------------------------------------------------------


class IssueData(_Model):
    id: str
    title: str = ""
    delegate_id: str | None = Field(None, alias="delegateId")
    assignee_id: str | None = Field(None, alias="assigneeId")


class IssueUpdate(LinearEvent):
    data: IssueData
    updated_from: dict = Field({}, alias="updatedFrom")
    """The fields' values before the update: only the changed ones are present."""
    actor: Person = Person()


class CommentData(_Model):
    id: str | None = None
    body: str | None = None
    user_id: str | None = Field(None, alias="userId")
    bot_actor: dict | None = Field(None, alias="botActor")
    issue_id: str = Field(alias="issueId")
    issue: Titled = Titled()


class CommentCreate(LinearEvent):
    data: CommentData
    actor: Person = Person()


class OAuthAppRevoked(LinearEvent):
    pass
