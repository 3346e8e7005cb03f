"""The console's team pages: usage, environments, integrations, managed secrets, cloud agents,
GitHub authorization and linked Slack identities.

Each page reads through the same ``core`` functions the CLI and the API use, as the signed-in
person, so the rules are theirs (an admin-only change is refused with the CLI's words); every
form carries the session's CSRF token, and a secret's value is written, never shown.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy.orm import Session

from bots.console import charts
from bots.console.sessions import ConsoleSession
from bots.console.views import STATUSES, checked, signed_in, status_of
from bots.web import SETTINGS, VAULT, in_session, public, reading
from core import (
    accounts,
    agents,
    budgets,
    environments,
    github_auth,
    identity,
    integrations,
    managed_secrets,
    usage,
)
from core.errors import OzError
from core.models import IntegrationProvider, Principal, RunSourceType, RunState
from core.prices import dollars

USAGE_DAYS = (7, 14, 30, 90)
STATUS_COLORS = {"Succeeded": "#0a7a2f", "Failed": "#b00020", "Cancelled": "#8e8e93", "Working": "#d69e00"}
SOURCE_COLORS = {
    RunSourceType.SLACK.value: "#4a154b",
    RunSourceType.LINEAR.value: "#5e6ad2",
    RunSourceType.GITHUB_ACTION.value: "#24292f",
    RunSourceType.API.value: "#1f77b4",
    RunSourceType.CLI.value: "#17becf",
    RunSourceType.LOCAL.value: "#9467bd",
    RunSourceType.WEB_APP.value: "#ff7f0e",
    RunSourceType.SCHEDULED_AGENT.value: "#2ca02c",
}


def _page(session: ConsoleSession, **context: Any) -> dict[str, Any]:
    return {"me": session.principal, "csrf": session.csrf, **context}


def _back(path: str, notice: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"{path}?{urlencode({'notice': notice})}")


async def _submitted(request: web.Request) -> tuple[ConsoleSession, dict]:
    """A form from a signed-in person, its CSRF token checked."""
    session = await signed_in(request)
    form = dict(await request.post())
    checked(session, form)
    return session, form


async def _done_or_refused(
    request: web.Request, back: str, done: Callable[[Any], str], fn: Callable[..., Any], *args: Any, **kwargs: Any
) -> NoReturn:
    """Do a form's change in one transaction, then back to its page saying how it went (a
    refusal in the core's own words: the CLI's rules, the CLI's messages)."""
    try:
        result = await in_session(request, fn, *args, **kwargs)
    except OzError as error:
        raise _back(back, error.message) from None
    raise _back(back, done(result))


# --- usage -------------------------------------------------------------------------------------


@public
@aiohttp_jinja2.template("usage.html")
async def usage_page(request: web.Request) -> dict:
    session = await signed_in(request)
    days = {str(d): d for d in USAGE_DAYS}.get(request.query.get("days", ""), 14)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    found = await reading(
        request, usage.runs_per_day, session.principal.team_uid, today - timedelta(days=days - 1), days
    )
    team = session.principal.team_uid
    first, end = today - timedelta(days=days - 1), today + timedelta(days=1)
    by_creator = await reading(request, usage.report, team, first, end, "creator")
    by_model = await reading(request, usage.report, team, first, end, "model")
    spending = await reading(request, budgets.budgets_of, team)
    by_status = {name: [0] * days for name in STATUSES}
    for (day, state), count in found.by_day_state.items():
        by_status[status_of(RunState(state))][found.days.index(day)] += count
    sources = sorted({source for _day, source in found.by_day_source})
    by_source = {source: [found.by_day_source[(day, source)] for day in found.days] for source in sources}
    return _page(
        session,
        days=days,
        choices=USAGE_DAYS,
        usage=found,
        status_chart=charts.stacked(found.days, by_status, STATUS_COLORS),
        source_chart=charts.stacked(found.days, by_source, {s: SOURCE_COLORS.get(s, "#555") for s in sources}),
        status_totals={name: sum(values) for name, values in by_status.items()},
        source_totals={source: sum(values) for source, values in by_source.items()},
        cost_by_creator=by_creator.lines,
        cost_by_model=by_model.lines,
        costs=by_creator,
        budgets=spending,
        dollars=dollars,
    )


# --- environments --------------------------------------------------------------------------------


@public
@aiohttp_jinja2.template("environments.html")
async def environment_list(request: web.Request) -> dict:
    session = await signed_in(request)
    found = await reading(request, environments.list_environments, session.principal.team_uid, "name")
    return _page(session, environments=found, notice=request.query.get("notice"))


def _lines(text: object) -> list[str]:
    return [line.strip() for line in str(text or "").splitlines() if line.strip()]


@public
async def environment_create(request: web.Request) -> web.StreamResponse:
    session, form = await _submitted(request)
    await _done_or_refused(
        request,
        "/console/environments",
        lambda env: f"Environment {env.name} created ({env.uid}).",
        environments.create_environment,
        session.principal,
        name=str(form.get("name") or "").strip(),
        docker_image=str(form.get("docker_image") or "").strip(),
        repos=_lines(form.get("repos")),
        setup_commands=_lines(form.get("setup_commands")),
        description=str(form.get("description") or "").strip() or None,
    )


@public
async def environment_update(request: web.Request) -> web.StreamResponse:
    """Name, image and description; repos and setup commands are replaced by the form's lines."""
    session, form = await _submitted(request)
    await _done_or_refused(
        request,
        "/console/environments",
        lambda _: "Environment saved.",
        _replace_environment,
        session.principal,
        request.match_info["uid"],
        form,
    )


def _replace_environment(session: Session, who: Principal, uid: str, form: dict) -> None:
    current = environments.get_environment(session, who.team_uid, uid)
    repos = [str(r) for r in current.repos]
    wanted_repos, wanted_setup = _lines(form.get("repos")), _lines(form.get("setup_commands"))
    environments.update_environment(
        session,
        who,
        uid,
        name=str(form.get("name") or "").strip() or None,
        docker_image=str(form.get("docker_image") or "").strip() or None,
        description=str(form.get("description") or "").strip(),
        add_repos=[r for r in wanted_repos if r not in repos],
        remove_repos=[r for r in repos if r not in wanted_repos],
        add_setup_commands=[c for c in wanted_setup if c not in current.setup_commands],
        remove_setup_commands=[c for c in current.setup_commands if c not in wanted_setup],
    )


@public
async def environment_delete(request: web.Request) -> web.StreamResponse:
    session, form = await _submitted(request)
    uid, force = request.match_info["uid"], bool(form.get("force"))
    try:
        await in_session(request, environments.delete_environment, session.principal, uid, force=force)
    except OzError as error:
        raise _back("/console/environments", error.message.replace("pass --force", "tick \u201cdetach\u201d")) from None
    raise _back("/console/environments", "Environment deleted.")


# --- integrations, cloud agents, identities -------------------------------------------------------


def _team_view(session: Session, who: Principal, limit: int) -> dict[str, Any]:
    people = {a.uid: a.email for a in accounts.list_accounts(session, who.team_uid)}
    links = [link for link in identity.list_links(session, IntegrationProvider.SLACK) if link.account_uid in people]
    return {
        "integrations": integrations.list_integrations(session, who.team_uid),
        "environments": {e.uid: e.name for e in environments.list_environments(session, who.team_uid)},
        "agents": agents.list_agents(session, who.team_uid, limit),
        "agent_limit": limit,
        "links": [(link, people[link.account_uid]) for link in links],
        "github": github_auth.status(session, who.uid),
    }


@public
@aiohttp_jinja2.template("team.html")
async def team_page(request: web.Request) -> dict:
    session = await signed_in(request)
    limit = request.app[SETTINGS].agent_limit
    return _page(session, **await reading(request, _team_view, session.principal, limit))


# --- managed secrets -------------------------------------------------------------------------------


@public
@aiohttp_jinja2.template("secrets.html")
async def secret_list(request: web.Request) -> dict:
    session = await signed_in(request)
    found = await reading(request, managed_secrets.list_secrets, session.principal)
    return _page(session, secrets=found, notice=request.query.get("notice"))


@public
async def secret_put(request: web.Request) -> web.StreamResponse:
    """Write-only: the value goes into the vault and is never sent back to any page."""
    session, form = await _submitted(request)
    name = str(form.get("name") or "").strip()
    value, scope = str(form.get("value") or ""), _scope(form)
    await _done_or_refused(
        request,
        "/console/secrets",
        lambda _: f"Secret {name} saved.",
        managed_secrets.put_secret,
        request.app[VAULT],
        session.principal,
        name,
        value,
        scope,
    )


@public
async def secret_delete(request: web.Request) -> web.StreamResponse:
    session, form = await _submitted(request)
    name = request.match_info["name"]
    await _done_or_refused(
        request,
        "/console/secrets",
        lambda _: f"Secret {name} deleted.",
        managed_secrets.delete_secret,
        session.principal,
        name,
        _scope(form),
    )


def _scope(form: dict) -> managed_secrets.Scope:
    return "personal" if form.get("scope") == "personal" else "team"
