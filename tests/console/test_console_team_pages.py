"""The console's team pages in a real browser: usage as server-drawn SVG whose totals reconcile
with the API, environments created, edited and deleted with the CLI's rules, managed secrets
written but never shown, and the team page (GitHub authorization, integrations, cloud agents,
linked Slack identities).  Screenshots of each page beside the test's temporary files."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from oz_agent_sdk import OzAPI
from playwright.sync_api import Page
from sqlalchemy import update

from core import budgets, environments, identity, integrations, runs
from core.errors import ErrorCode, OzError
from core.models import IntegrationProvider, ModelUsage, Origin, RunSourceType
from core.models.wire import RunAgentRequest
from core.prices import PriceTable
from core.store import Store, utcnow
from core.store.tables import RunRow
from tests.live_server import LiveServer
from tests.support.console import person, shot, sign_in, start
from tests.support.people import AGENT_LIMIT


def test_usage_is_drawn_on_the_server_and_reconciles_with_the_api(
    page: Page, console: LiveServer, store: Store, tmp_path: Path
):
    ada, ada_key = person(store, "ada@acme.dev", "acme")
    grace, _ = person(store, "grace@acme.dev", "acme")
    other, _ = person(store, "eve@globex.test", "globex")
    done = [start(store, ada, f"API run {n}") for n in range(3)]
    for run_id in done[:2]:
        runs.record_failure(store, None, run_id, OzError(ErrorCode.ENVIRONMENT_SETUP_FAILED, "pip failed"))
    slack = runs.create(
        store,
        None,
        grace,
        RunAgentRequest(prompt="from Slack"),
        source=RunSourceType.SLACK,
        origin=Origin(source=RunSourceType.SLACK, key="slack:T:C:1"),
        agent_limit=AGENT_LIMIT,
    ).run.run_id
    old = start(store, ada, "Three weeks ago")
    with store.session() as session:
        session.execute(update(RunRow).where(RunRow.run_id == old).values(created_at=utcnow() - timedelta(days=21)))
    start(store, other, "Another team's run")  # never counted
    with store.session() as session:  # what a worker records for a run whose agent used a million tokens
        million = [ModelUsage(model="claude-sonnet-4", input_tokens=1_000_000, output_tokens=0)]
        runs.record_usage(session, done[0], million, PriceTable())
        budgets.set_budget(session, ada.team_uid, budgets.TEAM, 50.0)

    sign_in(page, console, ada_key, "/console/usage")
    shot(page, tmp_path, "usage")
    assert page.locator("#total").inner_text().startswith("4 runs")  # the last 14 days, this team only
    totals = dict(
        page.locator("#status-totals tbody tr").evaluate_all(
            "rs => rs.map(r => [r.cells[0].innerText, +r.cells[1].innerText])"
        )
    )
    assert totals == {"Working": 2, "Failed": 2, "Succeeded": 0, "Cancelled": 0}
    sources = dict(
        page.locator("#source-totals tbody tr").evaluate_all(
            "rs => rs.map(r => [r.cells[0].innerText, +r.cells[1].innerText])"
        )
    )
    assert sources == {"API": 3, "SLACK": 1}
    creators = page.locator("#creators").inner_text()
    assert "ada@acme.dev\t3\t$3.00" in creators and "grace@acme.dev\t1\t$0.00" in creators
    assert page.locator("#cost-total").inner_text().startswith("$3.00 in all: $3.00 for models")
    assert "claude-sonnet-4\t1,000,000\t0\t$3.00" in page.locator("#models").inner_text()
    assert "team\t$50.00\t$3.00\t$47.00" in page.locator("#budgets").inner_text()
    bars = page.locator("#by-status rect, svg[aria-labelledby='by-status-title'] rect")
    labels = bars.evaluate_all("rs => rs.map(r => r.querySelector('title').textContent)")
    today = utcnow().strftime("%Y-%m-%d")
    assert f"{today}: 2 Failed" in labels and f"{today}: 2 Working" in labels

    # Reconciles with the API over the same window (an admin sees the whole team's runs).
    client = OzAPI(api_key=ada_key, base_url=f"{console.url}/api/v1", max_retries=0)
    since = (utcnow() - timedelta(days=13)).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
        microseconds=1
    )
    listed = client.agent.runs.list(created_after=since, limit=100).runs
    assert len(listed) == 4 and slack in {r.run_id for r in listed}
    page.goto(f"{console.url}/console/usage?days=30")
    assert page.locator("#total").inner_text().startswith("5 runs")
    page.goto(f"{console.url}/console/runs?tab=all")
    assert page.locator(f"tr[data-run='{done[0]}'] td.cost").inner_text() == "$3.00"
    assert page.locator(f"tr[data-run='{done[1]}'] td.cost").inner_text() == "$0.00"


def test_environments_created_edited_and_deleted_with_the_clis_rules(
    page: Page, console: LiveServer, store: Store, tmp_path: Path
):
    ada, ada_key = person(store, "ada@acme.dev", "acme")
    sign_in(page, console, ada_key, "/console/environments")
    page.get_by_label("Name", exact=True).last.fill("web")
    page.get_by_label("Docker image").last.fill("python:3.12")
    page.get_by_label("Repositories (owner/repo[@branch], one per line)").last.fill("acme/web\nacme/api@main")
    page.get_by_label("Setup commands (one per line, in order)").last.fill("pip install -e .")
    page.get_by_role("button", name="Create environment").click()
    assert "Environment web created" in page.get_by_role("status").inner_text()
    with store.reader() as session:
        [env] = environments.list_environments(session, ada.team_uid)
    assert [str(r) for r in env.repos] == ["acme/web", "acme/api@main"] and env.setup_commands == ["pip install -e ."]

    page.locator(f"#setup-{env.uid}").fill("pip install -e .\nmake db")
    page.locator(f"#repos-{env.uid}").fill("acme/web")
    page.get_by_role("button", name="Save web").click()
    assert page.get_by_role("status").inner_text() == "Environment saved."
    with store.reader() as session:
        saved = environments.get_environment(session, ada.team_uid, env.uid)
    assert saved.setup_commands == ["pip install -e .", "make db"] and [str(r) for r in saved.repos] == ["acme/web"]
    bad = page.locator(f"#repos-{env.uid}")
    bad.fill("not a repo")
    page.get_by_role("button", name="Save web").click()
    assert "owner/repo" in page.get_by_role("status").inner_text()  # the CLI's refusal, nothing changed
    shot(page, tmp_path, "environments")

    with store.session() as session:
        integrations.create_integration(session, ada, IntegrationProvider.SLACK, environment_id=env.uid)
    page.get_by_role("button", name="Delete web").click()
    assert "used by the slack integration" in page.get_by_role("status").inner_text()
    page.locator(f"section[data-environment='{env.uid}'] input[name=force]").check()
    page.get_by_role("button", name="Delete web").click()
    assert page.get_by_role("status").inner_text() == "Environment deleted."
    with store.reader() as session:
        assert environments.list_environments(session, ada.team_uid) == []


def test_secrets_are_written_and_never_shown(page: Page, console: LiveServer, store: Store, tmp_path: Path):
    _, ada_key = person(store, "ada@acme.dev", "acme")
    sign_in(page, console, ada_key, "/console/secrets")
    value = "sk-live-" + "7" * 24
    page.get_by_label("Name").fill("STRIPE_KEY")
    page.get_by_label("Value").fill(value)
    page.get_by_role("button", name="Save secret").click()
    assert page.get_by_role("status").inner_text() == "Secret STRIPE_KEY saved."
    assert page.locator("tr[data-secret='STRIPE_KEY']").is_visible()
    assert value not in page.content()
    shot(page, tmp_path, "secrets")
    page.get_by_label("Name").fill("not a name")
    page.get_by_label("Value").fill("x")
    page.locator("form[action='/console/secrets'] button").evaluate("b => b.form.noValidate = true")
    page.get_by_role("button", name="Save secret").click()
    assert "not a name" in page.get_by_role("status").inner_text()
    page.get_by_role("button", name="Delete STRIPE_KEY").click()
    assert page.get_by_role("status").inner_text() == "Secret STRIPE_KEY deleted."
    assert page.locator("tr[data-secret]").count() == 0


def test_the_team_page(page: Page, console: LiveServer, store: Store, tmp_path: Path):
    ada, ada_key = person(store, "ada@acme.dev", "acme")
    eve, _ = person(store, "eve@globex.test", "globex")
    with store.session() as session:
        env = environments.create_environment(session, ada, name="web", docker_image="python:3.12")
        integrations.create_integration(session, ada, IntegrationProvider.LINEAR, environment_id=env.uid, model_id="m1")
        identity.link(session, IntegrationProvider.SLACK, "T0001", "U0ADA", ada.uid)
        identity.link(session, IntegrationProvider.SLACK, "T9999", "U0EVE", eve.uid)
    sign_in(page, console, ada_key, "/console/team")
    shot(page, tmp_path, "team")
    assert page.locator("#github").inner_text().startswith("Not authorized")
    assert page.get_by_role("button", name="Authorize GitHub").get_attribute("href") == "/auth/github"
    row = page.locator("tr[data-integration='linear']").inner_text()
    assert "enabled" in row and "web" in row and "m1" in row
    assert page.locator("#agents tbody tr").count() == 1  # the team's default agent
    identities = page.locator("#slack-identities").inner_text()
    assert "U0ADA" in identities and "ada@acme.dev" in identities
    assert "U0EVE" not in identities  # another team's person
