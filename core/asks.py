"""One way a surface asks for a run: what a person said in a conversation (a Slack thread, a
Linear issue or agent session) becomes a stop, a follow-up, a refusal or a new run — by the
same rules whichever surface it came from.

A front door parses its delivery into an :class:`Ask`, reads the :class:`Situation` (who,
the conversation's latest run, the surface's defaults) and calls :func:`steer`.  Only when
that says :class:`Proceed` does it do its slow, surface-specific work (fetch the thread,
post its "On it"), then :func:`start` creates the run from the defaults.  Two calls rather
than one because what lies between them is the surface's own and asynchronous; the rules
on either side live here.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from core import budgets, identity, integrations, runs
from core.errors import OzError
from core.models import Account, IntegrationProvider, Origin, Run, RunSourceType
from core.models.wire import AmbientAgentConfig, FollowupRequest, RunAgentRequest
from core.queue import RunQueue
from core.store import Store


@dataclass(frozen=True)
class Ask:
    """What a person said to the agent in one conversation of a surface."""

    provider: IntegrationProvider
    origin_key: str
    """The conversation: later asks there find the run this one starts."""
    text: str
    stop: bool = False
    """They asked to stop what runs there (``stop`` in Slack, Linear's stop signal)."""


@dataclass(frozen=True)
class Situation:
    """What an ask finds: the person's account, the conversation's latest run, the surface's
    defaults (or the refusal that explains why there are none)."""

    account: Account
    latest: Run | None = None
    defaults: integrations.RunDefaults | None = None
    refusal: OzError | None = None


def situation(session: Session, account: Account, ask: Ask, *, setup_url: str) -> Situation:
    """Everything the store knows about an ask, in one read."""
    latest = runs.latest_for_origin(session, account.team_uid, ask.origin_key)
    try:
        defaults = integrations.run_defaults(session, account.team_uid, ask.provider, setup_url=setup_url)
        # Spent budgets refuse before the surface says "On it": the refusal stays private.
        budgets.require_room(session, account.team_uid, account.uid)
    except OzError as error:
        return Situation(account, latest, refusal=error)
    return Situation(account, latest, defaults)


@dataclass(frozen=True)
class Stopped:
    run: Run


@dataclass(frozen=True)
class NothingToStop:
    pass


@dataclass(frozen=True)
class FollowedUp:
    run: Run


@dataclass(frozen=True)
class Refused:
    error: OzError


@dataclass(frozen=True)
class Proceed:
    """Start a new run: the surface builds its prompt, then calls :func:`start`."""

    account: Account
    defaults: integrations.RunDefaults
    previous: Run | None
    """The conversation's earlier, finished run: the new one carries its conversation on."""


@dataclass(frozen=True)
class Started:
    run: Run
    created: bool
    """False when the ask had already started this run (a redelivery, or the same mention
    arriving by another path)."""


Steered = Stopped | NothingToStop | FollowedUp | Refused | Proceed


def steer(store: Store, queue: RunQueue | None, found: Situation, ask: Ask) -> Steered:
    """Stop the conversation's run, add to it, refuse, or say a new one may start.

    A stop with nothing running is :class:`NothingToStop`; a message while a run is active
    is a follow-up to it (only its creator or an admin may steer it: :class:`Refused`
    otherwise); with no active run, the surface's defaults decide whether one may start.
    """
    principal = identity.principal_of(found.account)
    active = found.latest if found.latest is not None and runs.is_active(found.latest) else None
    try:
        if ask.stop:
            if active is None:
                return NothingToStop()
            return Stopped(runs.cancel(store, queue, principal, active.run_id))
        if active is not None:
            followup = FollowupRequest(message=ask.text)
            return FollowedUp(runs.followup(store, queue, principal, active.run_id, followup))
    except OzError as error:
        return Refused(error)
    if found.refusal is not None:
        return Refused(found.refusal)
    assert found.defaults is not None
    return Proceed(found.account, found.defaults, found.latest)


def start(
    store: Store,
    queue: RunQueue | None,
    go: Proceed,
    *,
    source: RunSourceType,
    prompt: str,
    title: str,
    origin: Origin,
    idempotency_key: str,
    team_owned: bool = True,
    metadata: dict[str, str] | None = None,
    files: list[tuple[str, str, bytes]] | None = None,
    agent_limit: int,
) -> Started | Refused:
    """Create the run an ask proceeds to, configured from the surface's defaults.

    A team run executes as the integration's cloud agent when it names one; a private one
    stays the person's own.  The idempotency key makes a redelivered ask find its run.
    """
    defaults = go.defaults
    request = RunAgentRequest(
        prompt=prompt,
        title=runs.title_of(title),
        team=team_owned,
        agent_identity_uid=defaults.agent_uid if team_owned else None,
        conversation_id=go.previous.conversation_id if go.previous is not None else None,
        metadata=metadata or None,
        config=AmbientAgentConfig(
            environment_id=defaults.environment_id,
            model_id=defaults.model_id,
            mcp_servers=defaults.mcp_servers or None,
        ),
    )
    try:
        created = runs.create(
            store,
            queue,
            identity.principal_of(go.account),
            request,
            source=source,
            origin=origin,
            idempotency_key=idempotency_key,
            files=files,
            agent_limit=agent_limit,
        )
    except OzError as error:
        return Refused(error)
    return Started(created.run, created.created)
