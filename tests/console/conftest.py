"""The console in a real browser: Debian's Chromium driven by Playwright, at a phone's width,
against a live gateway on this test's store."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from core.queue import RunQueue
from core.settings import Settings
from core.store import Store
from tests.live_server import LiveServer, gateway_server
from tests.runner_support import settings_with

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def console(settings: Settings, store: Store, queue: RunQueue) -> Iterator[LiveServer]:
    with gateway_server(settings_with(settings, public_url=None), store, queue) as server:
        yield server


@pytest.fixture
def page(browser: Browser, tmp_path: Path) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 390, "height": 844})  # a phone's width
    yield context.new_page()
    context.close()
