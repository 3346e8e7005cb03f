"""The console in a real browser (Debian's Chromium driven by Playwright): sign in with a
personal key, the runs list with its tabs and filters, a run's page rendering untrusted text
inert, cancel from the page, another team's run a 404, forms without the CSRF token refused,
agent keys and revoked keys kept out, sign-out.  Screenshots of each page are saved beside
the test's temporary files."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from playwright.sync_api import Page
from sqlalchemy import update

from core import agents, runs
from core.errors import ErrorCode, OzError
from core.keys import create_key, revoke_key
from core.models.wire import AgentCreateRequest
from core.queue import RunQueue
from core.store import Store, utcnow
from core.store.tables import RunRow
from tests.live_server import LiveServer
from tests.support.console import person, shot, sign_in, start
from tests.support.people import AGENT_LIMIT

HOSTILE = "Fix it <script>window.__owned = 1</script> and ping <@U0LAN0Z89> <!channel>"


def test_sign_in_list_filter_and_open_a_run_that_renders_untrusted_text_inert(
    page: Page, console: LiveServer, store: Store, tmp_path: Path
):
    """Sign in (a redirect there and back), Personal then All, "failed today", a hostile prompt."""
    ada, ada_key = person(store, "ada@acme.dev", "acme")
    grace, _ = person(store, "grace@acme.dev", "acme")
    mine = start(store, ada, HOSTILE)
    failed = start(store, ada, "Upgrade the parser")
    runs.record_failure(
        store, None, failed, OzError(ErrorCode.ENVIRONMENT_SETUP_FAILED, "pip failed", title="Setup failed")
    )
    errored = start(store, ada, "Bump the base image")  # a platform error: Failed too, as the seeds show it
    runs.record_failure(store, None, errored, OzError(ErrorCode.INFRASTRUCTURE_TIMEOUT))
    earlier = start(store, ada, "Last week's attempt")
    runs.record_failure(store, None, earlier, OzError(ErrorCode.ENVIRONMENT_SETUP_FAILED, "apt failed"))
    with store.session() as session:  # it failed two days ago
        session.execute(update(RunRow).where(RunRow.run_id == earlier).values(created_at=utcnow() - timedelta(days=2)))
    teammates = start(store, grace, "Grace's team run")

    page.goto(f"{console.url}/console/runs")
    assert "/console/sign-in" in page.url  # not signed in: to the form, and back after
    sign_in(page, console, ada_key)
    assert page.url.endswith("/console/runs")
    shot(page, tmp_path, "runs")
    rows = page.locator("tbody tr[data-run]")
    assert sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.run)")) == sorted([mine, failed, errored, earlier])
    page.get_by_role("link", name="All").click()
    assert teammates in page.locator("tbody").inner_html()

    page.goto(f"{console.url}/console/runs?tab=personal")
    page.get_by_label("Status").select_option("Failed")
    page.get_by_label("Created on (UTC)").fill(utcnow().strftime("%Y-%m-%d"))
    page.get_by_role("button", name="Filter").click()
    shown = page.locator("tbody tr[data-run]").evaluate_all("rs => rs.map(r => r.dataset.run)")
    assert sorted(shown) == sorted([failed, errored])  # failed today: exactly those
    assert page.locator(f"tr[data-run='{errored}'] .state").inner_text() == "Failed"

    page.goto(f"{console.url}/console/runs/{mine}")
    shot(page, tmp_path, "run")
    assert page.title() == f"{HOSTILE} · Oz console"  # the title is the run's, as text
    assert page.locator("#prompt").inner_text() == HOSTILE  # shown as text
    assert page.evaluate("window.__owned") is None  # and never run
    assert page.locator("#state").inner_text() == "QUEUED"


def test_cancel_from_the_page_and_csrf_and_other_teams(page: Page, console: LiveServer, store: Store, tmp_path: Path):
    ada, ada_key = person(store, "ada@acme.dev", "acme")
    other, _ = person(store, "eve@globex.test", "globex")
    mine = start(store, ada, "Long job")
    theirs = start(store, other, "Globex secret work")
    sign_in(page, console, ada_key, f"/console/runs/{mine}")
    assert page.url.endswith(f"/console/runs/{mine}")  # back where the sign-in began

    page.get_by_role("button", name="Cancel this run").click()
    assert page.locator("#state").inner_text() == "CANCELLED"
    assert page.get_by_role("status").inner_text() == "Cancelled."
    shot(page, tmp_path, "cancelled")

    assert page.goto(f"{console.url}/console/runs/{theirs}").status == 404  # another team's: no such run
    forged = page.request.post(f"{console.url}/console/runs/{mine}/cancel", form={"csrf": "guessed"})
    assert forged.status == 403

    page.goto(f"{console.url}/console/runs")
    page.get_by_role("button", name="Sign out").click()
    page.goto(f"{console.url}/console/runs")
    assert "/console/sign-in" in page.url


def test_agent_keys_and_revoked_keys_stay_out(page: Page, console: LiveServer, store: Store):
    ada, ada_key = person(store, "ada@acme.dev", "acme")
    with store.session() as session:
        from core.accounts import account_by_email

        agent = agents.create_agent(session, ada, AgentCreateRequest(name="bot"), limit=AGENT_LIMIT)
        agent_key = create_key(
            session, account_by_email(session, "ada@acme.dev"), "bot", agent_uid=agent.uid, agent_limit=AGENT_LIMIT
        )[1]
    sign_in(page, console, agent_key)
    assert "Agent keys cannot sign in" in page.get_by_role("alert").inner_text()

    sign_in(page, console, ada_key)
    assert page.url.endswith("/console/runs")
    with store.session() as session:
        from core.store.tables import ApiKeyRow

        for row in session.query(ApiKeyRow).filter(ApiKeyRow.account_uid == ada.uid, ApiKeyRow.agent_uid.is_(None)):
            revoke_key(session, row.uid)
    page.goto(f"{console.url}/console/runs")
    assert "/console/sign-in" in page.url  # the session ended with its key


def test_a_working_runs_transcript_advances_live_and_a_follow_up_goes_from_the_page(
    page: Page, console: LiveServer, store: Store, queue: RunQueue, tmp_path: Path
):
    """The run page follows the transcript without reloading (a step the runner records appears),
    and the follow-up box reaches the run."""
    from core import events as run_events
    from core.events import EventKind, Masker, RunEvent

    ada, ada_key = person(store, "ada@acme.dev", "acme")
    run_id = start(store, ada, "Long job")
    sign_in(page, console, ada_key, f"/console/runs/{run_id}")
    page.wait_for_timeout(500)  # the page's stream is open
    with store.session() as session:  # the runner records a step, and announces it
        [stored] = run_events.record(session, run_id, [RunEvent(kind=EventKind.COMMAND, command="make test")], Masker())
    queue.publish(run_id, [stored])
    page.locator("#transcript li[data-kind='command']").wait_for(timeout=10_000)
    assert "make test" in page.locator("#transcript").inner_text()
    shot(page, tmp_path, "live")

    page.get_by_label("Follow-up").fill("Also update the changelog")
    page.get_by_role("button", name="Send follow-up").click()
    assert page.get_by_role("status").inner_text() == "Follow-up sent."
    with store.reader() as session:
        assert [m.message for m in runs.pending_followups(session, run_id)] == ["Also update the changelog"]


def test_a_key_is_shown_once_and_a_revoked_one_is_refused_by_the_api(
    page: Page, console: LiveServer, store: Store, tmp_path: Path
):
    import httpx

    _, ada_key = person(store, "ada@acme.dev", "acme")
    sign_in(page, console, ada_key, "/console/keys")
    page.get_by_label("Name").fill("ci-bot")
    page.get_by_role("button", name="Create key").click()
    raw = page.locator("#new-key").inner_text().strip()
    assert raw.startswith("wk-") and len(raw) == 43
    shot(page, tmp_path, "keys")
    assert httpx.get(f"{console.url}/api/v1/agent/runs", headers={"Authorization": f"Bearer {raw}"}).status_code == 200
    page.goto(f"{console.url}/console/keys")
    assert raw not in page.content()  # never shown again
    page.get_by_role("button", name="Revoke ci-bot").click()
    assert "revoked" in page.locator("tr", has_text="ci-bot").inner_text()
    assert httpx.get(f"{console.url}/api/v1/agent/runs", headers={"Authorization": f"Bearer {raw}"}).status_code == 401
