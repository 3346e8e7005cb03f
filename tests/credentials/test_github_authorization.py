"""Authorize GitHub: the OAuth web flow, tokens encrypted at rest, refresh, and revocation."""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
from sqlalchemy import text

from core.accounts import create_account
from core.github_auth import status
from core.github_oauth import authorize_link
from core.models import Principal
from core.settings import Settings
from core.store import Store
from runner.context import WorkerContext
from runner.job import run_job
from tests.fakes.github import FakeGitHub
from tests.live_server import LiveServer
from tests.runner.test_execution import final
from tests.runner_support import Remotes


def follow(browser: httpx.Client, response: httpx.Response, limit: int = 5) -> httpx.Response:
    """A browser's redirects, hop by hop, cookies kept (the gateway and the fake GitHub are
    both on loopback)."""
    for _ in range(limit):
        if response.status_code not in (301, 302, 303, 307):
            return response
        response = browser.get(response.headers["location"])
    return response


def form_token(page: httpx.Response) -> str:
    return re.search(r"name='token' value='([^']+)'", page.text).group(1)


def open_link(link: str, browser: httpx.Client | None = None) -> httpx.Response:
    """What a person does with their link: open it, confirm, and go through GitHub."""
    browser = browser or httpx.Client()
    page = browser.get(link)
    assert page.status_code == 200, page.text
    start = browser.post(link.split("?")[0], data={"token": form_token(page)})
    return follow(browser, start)


def make_person(store: Store, email: str = "carol@example.com") -> Principal:
    with store.session() as session:
        account = create_account(session, email, "acme")
    return Principal(kind="user", uid=account.uid, team_uid=account.team_uid, email=account.email)


def test_authorize_stores_the_token_encrypted(
    web: LiveServer, web_settings: Settings, github: FakeGitHub, store: Store, database_url: str
):
    carol = make_person(store)
    github.browser_login = "carol-gh"
    link = authorize_link(web_settings, carol.uid, public_url=web.url)
    browser = httpx.Client()
    confirm = browser.get(link)
    assert confirm.status_code == 200 and "Connect GitHub to carol@example.com?" in confirm.text
    first = browser.post(f"{web.url}/auth/github", data={"token": form_token(confirm)})
    assert first.status_code == 303 and "oz_github_oauth" in first.headers["set-cookie"]
    assert "HttpOnly" in first.headers["set-cookie"] and "SameSite=Lax" in first.headers["set-cookie"]
    authorize = urlparse(first.headers["location"])
    assert authorize.path == "/login/oauth/authorize"
    assert parse_qs(authorize.query)["client_id"] == [web_settings.github_oauth_client_id]
    page = follow(browser, first)
    assert page.status_code == 200 and "Runs you start will use GitHub as carol-gh" in page.text

    with store.reader() as session:
        assert status(session, carol.uid)["login"] == "carol-gh"
        stored = session.execute(text("SELECT token_encrypted FROM github_authorizations")).scalar_one()
    token = next(t for t, login in github.user_tokens.items() if login == "carol-gh")
    assert token not in stored
    if database_url.startswith("sqlite"):
        db_file = Path(database_url.removeprefix("sqlite:///"))
        for path in (db_file, Path(f"{db_file}-wal")):
            if path.exists():
                assert token.encode() not in path.read_bytes(), f"the raw token is in {path.name}"


def test_state_is_single_use_and_unforgeable(web: LiveServer, web_settings: Settings, github: FakeGitHub, store: Store):
    carol = make_person(store)
    github.browser_login = "carol-gh"
    browser = httpx.Client()
    link = authorize_link(web_settings, carol.uid, public_url=web.url)
    to_github = browser.post(f"{web.url}/auth/github", data={"token": form_token(browser.get(link))})
    callback = browser.get(to_github.headers["location"]).headers["location"]
    assert browser.get(callback).status_code == 200
    replay = httpx.get(callback, cookies={"oz_github_oauth": parse_qs(urlparse(callback).query)["state"][0]})
    assert replay.status_code == 403
    forged = httpx.get(f"{web.url}/auth/github/callback", params={"code": "x", "state": "forged.state"})
    assert forged.status_code == 403
    tampered_link = authorize_link(web_settings, carol.uid, public_url=web.url)[:-3] + "abc"
    assert httpx.get(tampered_link).status_code == 403


def test_a_link_is_single_use_and_names_the_account_it_binds(
    web: LiveServer, web_settings: Settings, github: FakeGitHub, store: Store
):
    carol = make_person(store)
    link = authorize_link(web_settings, carol.uid, public_url=web.url)
    github.browser_login = "carol-gh"
    assert open_link(link).status_code == 200
    # Someone else who saw the link later (a shared channel) cannot use it for their GitHub.
    github.browser_login = "mallory-gh"
    stranger = httpx.Client()
    page = stranger.get(link)
    assert "Connect GitHub to carol@example.com?" in page.text  # says whose account it is
    again = stranger.post(f"{web.url}/auth/github", data={"token": form_token(page)})
    assert again.status_code == 403 and "already used" in again.text
    with store.reader() as session:
        assert status(session, carol.uid)["login"] == "carol-gh"


def test_the_callback_is_accepted_only_in_the_browser_that_started(
    web: LiveServer, web_settings: Settings, github: FakeGitHub, store: Store
):
    carol = make_person(store)
    github.browser_login = "mallory-gh"  # whoever is signed in to GitHub where the callback lands
    carols_browser = httpx.Client()
    link = authorize_link(web_settings, carol.uid, public_url=web.url)
    to_github = carols_browser.post(f"{web.url}/auth/github", data={"token": form_token(carols_browser.get(link))})
    callback = carols_browser.get(to_github.headers["location"]).headers["location"]
    # The callback URL opened in another browser (sent to a victim, or stolen): refused.
    elsewhere = httpx.Client().get(callback)
    assert elsewhere.status_code == 403 and "browser you started in" in elsewhere.text
    with store.reader() as session:
        assert status(session, carol.uid)["authorized"] is False


def test_a_personal_key_can_start_the_flow_and_nothing_else_can(web: LiveServer, github: FakeGitHub, store: Store):
    from core.keys import create_key

    with store.session() as session:
        account = create_account(session, "dan@example.com", "acme")
        _, key = create_key(session, account, "laptop")
    github.browser_login = "dan-gh"
    browser = httpx.Client()
    sign_in = browser.get(f"{web.url}/auth/github")
    assert sign_in.status_code == 200 and "personal API key" in sign_in.text
    start = browser.post(f"{web.url}/auth/github", data={"api_key": key})
    assert start.status_code == 303
    assert follow(browser, start).status_code == 200
    with store.reader() as session:
        assert status(session, account.uid)["login"] == "dan-gh"
    assert httpx.post(f"{web.url}/auth/github", data={"api_key": "wk-nope"}).status_code == 401


def test_expired_tokens_are_refreshed_with_rotating_refresh_tokens(
    web: LiveServer,
    web_settings: Settings,
    ctx: WorkerContext,
    github: FakeGitHub,
    store: Store,
    remotes: Remotes,
    make_env,
    start_run,
):
    ctx = dataclasses.replace(ctx, settings=web_settings)
    carol = make_person(store)
    github.browser_login = "carol-gh"
    github.token_lifetime = 1  # seconds: GitHub's expiring user tokens, shortened
    assert open_link(authorize_link(web_settings, carol.uid, public_url=web.url)).status_code == 200
    first_refresh = next(iter(github.refresh_tokens))
    remotes.create("acme", "api")
    github.add_repo("acme", "api", collaborators={"carol-gh": "write"})
    time.sleep(1.1)
    run_id = start_run(carol, make_env(repos=["acme/api"]))
    assert run_job(ctx, run_id) == "SUCCEEDED"
    assert first_refresh not in github.refresh_tokens  # used once, replaced
    with store.reader() as session:
        assert status(session, carol.uid)["authorized"] is True


def test_a_revoked_token_marks_the_authorization_stale(
    ctx: WorkerContext,
    alice,
    github: FakeGitHub,
    store: Store,
    remotes: Remotes,
    make_env,
    start_run,
):
    remotes.create("acme", "api")
    github.add_repo("acme", "api", collaborators={"alice-gh": "write"})
    env_id = make_env(repos=["acme/api"])
    github.revoke(alice.github_token)
    run_id = start_run(alice.principal, env_id)
    assert run_job(ctx, run_id) == "FAILED"
    message = final(store, run_id).status_message.message
    assert message.startswith("Your GitHub authorization has expired or was revoked")
    assert message.endswith("authorize again at http://gateway.test/auth/github)")  # a sign-in page, no bearer link
    assert "token=" not in message
    with store.reader() as session:
        assert status(session, alice.principal.uid)["stale"] is True
    again = start_run(alice.principal, env_id)
    assert run_job(ctx, again) == "FAILED"
    assert final(store, again).status_message.message.startswith("User is not connected to GitHub")


def test_public_repos_are_read_without_authorization_but_never_written(
    ctx: WorkerContext,
    github: FakeGitHub,
    store: Store,
    remotes: Remotes,
    make_env,
    start_run,
):
    erin = make_person(store, "erin@example.com")
    remotes.create("acme", "docs")
    github.add_repo("acme", "docs", private=False)
    run_id = start_run(erin, make_env(repos=["acme/docs"]))
    assert run_job(ctx, run_id) == "SUCCEEDED"
    assert github.pulls == []
    assert remotes.branches("acme", "docs") == ["main"]
    message = final(store, run_id).status_message.message
    assert "Changes in acme/docs were not pushed" in message and "/auth/github" in message


def test_cli_status_shows_who_is_authorized_as_which_login(alice, database_url: str, tmp_path: Path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("OZGW_")}
    env.update(OZGW_DATABASE_URL=database_url, OZGW_DATA_DIR=str(tmp_path))

    def github_cli(command: str) -> str:
        argv = [
            sys.executable,
            "-m",
            "cli",
            "--output-format",
            "text",
            "github",
            command,
            "--email",
            "alice@example.com",
        ]
        return subprocess.run(argv, env=env, capture_output=True, text=True, check=True, timeout=60).stdout

    assert github_cli("status").strip() == "alice@example.com\tTrue\talice-gh"
    assert "/auth/github?token=" in github_cli("authorize")


def test_the_console_signs_in_with_github_whoever_authorized_that_login(
    web: LiveServer, web_settings: Settings, github: FakeGitHub, store: Store
):
    """With OAuth configured the console offers GitHub sign-in: GitHub says who this is, and the
    account that authorized that login is signed in; a login nobody authorized, or a callback
    finished in another browser, signs nobody in."""
    from core.github_auth import save_authorization
    from core.vault import Vault

    carol = make_person(store)
    with store.session() as session:
        save_authorization(session, Vault.from_settings(web_settings), carol.uid, "Carol-GH", "gho_" + "c" * 36)
    browser = httpx.Client(base_url=web.url)
    assert "Sign in with GitHub" in browser.get(f"{web.url}/console/sign-in").text

    github.browser_login = "carol-gh"  # GitHub logins ignore case
    start = browser.get(f"{web.url}/console/sign-in/github", params={"next": "/console/keys"})
    assert start.status_code == 303 and "oz_console_github" in start.headers["set-cookie"]
    outside = urlparse(start.headers["location"])
    assert outside.path == "/login/oauth/authorize"
    callback = browser.get(start.headers["location"])  # GitHub sends the browser back
    stolen = callback.headers["location"]
    landed = follow(browser, callback)
    assert landed.status_code == 200 and str(landed.url).endswith("/console/keys")
    assert "carol@example.com" in landed.text

    github.browser_login = "mallory-gh"
    other = httpx.Client(base_url=web.url)
    refused = follow(other, other.get(f"{web.url}/console/sign-in/github"))
    assert refused.status_code == 401 and "No account here has authorized GitHub as mallory-gh" in refused.text
    assert other.get("/console/runs", follow_redirects=True).url.path == "/console/sign-in"  # not signed in

    replayed = httpx.Client(base_url=web.url).get(stolen)  # carol's callback, opened in someone else's browser
    assert replayed.status_code == 401 and "GitHub sign-in did not complete" in replayed.text
