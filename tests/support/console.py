"""Console test helpers: people with personal keys, runs, signing in, screenshots."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page

from core import runs
from core.accounts import create_account
from core.identity import principal_of
from core.keys import create_key
from core.models import Principal
from core.models.wire import RunAgentRequest
from core.store import Store
from tests.live_server import LiveServer
from tests.support.people import AGENT_LIMIT


def person(store: Store, email: str, team: str) -> tuple[Principal, str]:
    with store.session() as session:
        account = create_account(session, email, team)
        return principal_of(account), create_key(session, account, "console")[1]


def start(store: Store, who: Principal, prompt: str, *, team: bool = True) -> str:
    return runs.create(store, None, who, RunAgentRequest(prompt=prompt, team=team), agent_limit=AGENT_LIMIT).run.run_id


def sign_in(page: Page, console: LiveServer, key: str, where: str = "/console/runs") -> None:
    page.goto(f"{console.url}{where}")
    page.get_by_label("Your personal API key").fill(key)
    page.get_by_role("button", name="Sign in").click()


def shot(page: Page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
