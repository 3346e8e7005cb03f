"""The ``oz-gateway`` command line, run as a user runs it: a subprocess on a fresh data dir."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import Cli


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "data")


@pytest.fixture
def cli_process(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "data", subprocess=True)


def test_the_command_as_a_user_runs_it(cli_process: Cli):
    """The installed entry point in a process of its own: output streams and exit codes."""
    cli = cli_process
    cli("account", "create", "--email", "dev@example.com", "--team", "acme")
    key = cli("key", "create", "--email", "dev@example.com", "--name", "laptop").stdout.strip()
    assert cli.json("whoami", env={"WARP_API_KEY": key})["email"] == "dev@example.com"
    refused = cli("whoami", env={"WARP_API_KEY": "wk-nope"}, ok=False)
    assert refused.returncode == 1 and "authentication_required" in refused.stderr and refused.stdout == ""
    assert "Traceback" not in refused.stderr


def test_account_key_environment_and_run(cli: Cli):
    cli("account", "create", "--email", "Dev@Example.com", "--team", "acme")
    shown = cli("key", "create", "--email", "dev@example.com", "--name", "laptop", "--expires", "30d")
    raw_key = shown.stdout.strip()
    assert raw_key.startswith("wk-") and len(raw_key) == 43
    assert "not shown again" in shown.stderr

    env = cli.json(
        "environment",
        "create",
        "--email",
        "dev@example.com",
        "-n",
        "api",
        "-d",
        "python:3.12",
        "-r",
        "acme/api@main",
        "-r",
        "acme/web",
        "-c",
        "pip install -e .",
        "-c",
        "make db",
        "--description",
        "API service",
    )
    assert len(env["uid"]) == 22 and env["repos"] == ["acme/api@main", "acme/web"]

    updated = cli.json(
        "environment",
        "update",
        env["uid"],
        "--email",
        "dev@example.com",
        "--remove-repo",
        "acme/web",
        "--remove-setup-command",
        "make db",
        "-c",
        "make seed",
        "--description",
        "",
    )
    assert updated["repos"] == ["acme/api@main"]
    assert updated["setup_commands"] == ["pip install -e .", "make seed"]
    assert updated["description"] is None
    missing = cli(
        "environment", "update", env["uid"], "--email", "dev@example.com", "--remove-setup-command", "make", ok=False
    )
    assert missing.returncode == 1 and "must match exactly" in missing.stderr
    too_long = cli(
        "environment",
        "create",
        "--email",
        "dev@example.com",
        "-n",
        "x",
        "-d",
        "img",
        "--description",
        "d" * 241,
        ok=False,
    )
    assert "invalid_request" in too_long.stderr and "240" in too_long.stderr

    # As the Oz CLI does, a run can be started with the key in WARP_API_KEY.
    as_key = {"WARP_API_KEY": raw_key}
    started = cli.json(
        "run", "--prompt", "Fix the flaky test", "--environment", env["uid"], "--name", "flaky", env=as_key
    )
    assert started["state"] == "QUEUED" and started["queued"] is True
    listed = cli("--output-format", "ndjson", "run", "list", "--state", "QUEUED", env=as_key).stdout.splitlines()
    assert [json.loads(line)["run_id"] for line in listed] == [started["run_id"]]
    text = cli("--output-format", "text", "run", "list", env=as_key).stdout
    assert text.startswith(started["run_id"] + "\tQUEUED\tCLI\tFix the flaky test")
    got = cli.json("run", "get", started["run_id"], env=as_key)
    assert got["agent_config"]["name"] == "flaky" and got["source"] == "CLI"

    refused = cli("environment", "delete", env["uid"], "--email", "dev@example.com", ok=False)
    assert "--force" in refused.stderr
    cli("environment", "delete", env["uid"], "--email", "dev@example.com", "--force")
    assert cli.json("environment", "list", "--email", "dev@example.com") == []


def test_clear_errors_for_bad_input(cli: Cli):
    assert "say who is acting" in cli("environment", "list", ok=False).stderr
    assert "not found" in cli("environment", "list", "--email", "nobody@example.com", ok=False).stderr
    cli("account", "create", "--email", "a@example.com")
    duplicate = cli("account", "create", "--email", "a@example.com", ok=False)
    assert "already exists" in duplicate.stderr
    bad_key = cli("run", "--prompt", "x", env={"WARP_API_KEY": "wk-nope"}, ok=False)
    assert "authentication_required" in bad_key.stderr
    bad_repo = cli(
        "environment", "create", "--email", "a@example.com", "-n", "x", "-d", "img", "-r", "not a repo", ok=False
    )
    assert "owner/repo" in bad_repo.stderr


def test_integration_commands(cli: Cli, tmp_path: Path):
    cli("account", "create", "--email", "lead@example.com", "--team", "acme")
    who = ("--email", "lead@example.com")
    env = cli.json("environment", "create", *who, "-n", "web", "-d", "node:20")
    mcp_file = tmp_path / "mcp.json"
    mcp_file.write_text('{"github": {"url": "https://api.githubcopilot.com/mcp/"}}')
    created = cli.json(
        "integration",
        "create",
        "slack",
        *who,
        "--environment",
        env["uid"],
        "--prompt",
        "Be brief.",
        "--mcp",
        str(mcp_file),
    )
    assert created["provider"] == "slack" and created["enabled"] is True
    assert created["mcp_servers"] == {"github": {"url": "https://api.githubcopilot.com/mcp/"}}
    updated = cli.json(
        "integration",
        "update",
        "slack",
        *who,
        "--prompt",
        "",
        "--model",
        "m2",
        "--mcp",
        '{"local": {"command": "npx", "args": ["srv"]}}',
    )
    assert updated["custom_prompt"] is None and updated["model_id"] == "m2"
    assert updated["mcp_servers"] == {"local": {"command": "npx", "args": ["srv"]}}
    assert cli.json("integration", "disable", "slack", *who)["enabled"] is False
    assert cli.json("integration", "enable", "slack", *who)["enabled"] is True
    assert cli.json("integration", "update", "slack", *who, "--remove-environment")["environment_id"] is None
    listed = cli("--output-format", "text", "integration", "list", *who).stdout
    assert listed.startswith("slack\tTrue\t\tm2\t")
    bad = cli("integration", "update", "slack", *who, "--mcp", "{not json", ok=False)
    assert "--mcp must be JSON" in bad.stderr
    missing = cli("integration", "update", "linear", *who, "--model", "m", ok=False)
    assert "Linear integration for this team not found" in missing.stderr
    cli("integration", "update", "slack", *who, "--environment", env["uid"])
    in_use = cli("environment", "delete", env["uid"], *who, ok=False)  # the Slack integration uses it
    assert "used by the slack integration" in in_use.stderr and "--force" in in_use.stderr
    other = cli.json("environment", "create", *who, "-n", "spare", "-d", "node:20")
    cli("integration", "create", "linear", *who, "--environment", other["uid"])
    assert cli.json("environment", "delete", other["uid"], *who, "--force")["deleted"] is True
    linear = next(i for i in cli.json("integration", "list", *who) if i["provider"] == "linear")
    assert linear["environment_id"] is None  # detached, so its requests say it has no environment
    nobody = cli("integration", "update", "slack", *who, "--agent", "no-such-agent", ok=False)
    assert "no-such-agent" in nobody.stderr and "not found" in nobody.stderr
    assert cli.json("integration", "update", "slack", *who, "--remove-mcp")["mcp_servers"] == {}
    assert cli.json("integration", "delete", "slack", *who) == {"provider": "slack", "deleted": True}
    assert [i["provider"] for i in cli.json("integration", "list", *who)] == ["linear"]


def test_identity_link_and_unlink(cli: Cli):
    cli("account", "create", "--email", "ada@acme.dev", "--team", "acme")
    linked = cli.json("identity", "link", "slack", "T061EG9R6", "U061F7AUR", "ada@acme.dev")
    assert linked["external_user"] == "U061F7AUR" and linked["provider"] == "slack"
    listed = cli.json("identity", "list")
    assert [(i["external_team"], i["external_user"]) for i in listed] == [("T061EG9R6", "U061F7AUR")]
    unknown = cli("identity", "link", "slack", "T061EG9R6", "U0EVE", "eve@acme.dev", ok=False)
    assert "resource_not_found" in unknown.stderr
    cli("identity", "unlink", "slack", "T061EG9R6", "U061F7AUR")
    assert cli.json("identity", "list") == []
    again = cli("identity", "unlink", "slack", "T061EG9R6", "U061F7AUR", ok=False)
    assert "resource_not_found" in again.stderr


def test_a_shared_github_token_is_refused_on_a_server(cli: Cli):
    """``OZGW_GITHUB_TOKEN`` would act on GitHub as one identity for everyone: only the Action's
    local mode may use it; a server says so and does not start."""
    refused = cli("account", "list", ok=False, env={"OZGW_GITHUB_TOKEN": "ghp_" + "x" * 36})
    assert "invalid settings" in refused.stderr and "local mode only" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_keys_people_whoami_and_cancel(cli: Cli):
    cli("account", "create", "--email", "lead@example.com", "--team", "acme")
    cli("account", "create", "--email", "bob@example.com", "--team", "acme")
    bob_key = cli.json("key", "create", "--email", "bob@example.com", "--name", "laptop")["key"]
    lead_key = cli.json("key", "create", "--email", "lead@example.com", "--name", "ci")["key"]

    me = cli.json("--api-key", bob_key, "whoami")
    assert me["email"] == "bob@example.com" and me["team"] == "acme" and me["admin"] is False
    assert cli.json("whoami", env={"WARP_API_KEY": lead_key})["admin"] is True  # the environment works too

    mine = cli("--output-format", "json", "--api-key", bob_key, "key", "list")
    assert bob_key not in mine.stdout  # never the key, only its prefix
    [listed] = json.loads(mine.stdout)
    assert listed["name"] == "laptop" and listed["prefix"] == bob_key[:7] + "…" and listed["revoked_at"] is None
    assert {k["name"] for k in cli.json("key", "list", "--email", "lead@example.com")} == {"laptop", "ci"}

    lead_key_uid = next(k["uid"] for k in cli.json("key", "list", "--email", "lead@example.com") if k["name"] == "ci")
    refused = cli("--api-key", bob_key, "key", "revoke", lead_key_uid, ok=False)
    assert "only the key's holder or a team admin" in refused.stderr
    revoked = cli.json("key", "revoke", listed["uid"], "--email", "lead@example.com")
    assert revoked["revoked_at"] is not None
    assert "authentication_required" in cli("--api-key", bob_key, "whoami", ok=False).stderr

    people = cli.json("account", "list", "--email", "lead@example.com")
    assert [(p["email"], p["is_admin"]) for p in people] == [("lead@example.com", True), ("bob@example.com", False)]

    bob_run = cli.json("--api-key", lead_key, "run", "--prompt", "Bob's task", "--email", "bob@example.com")["run_id"]
    second_key = cli.json("key", "create", "--email", "bob@example.com", "--name", "desktop")["key"]
    refused = cli("account", "remove", "lead@example.com", "--email", "bob@example.com", ok=False)
    assert "only a team admin can remove an account" in refused.stderr
    cli("account", "remove", "bob@example.com", "--email", "lead@example.com")
    assert "authentication_required" in cli("--api-key", second_key, "whoami", ok=False).stderr  # keys revoked
    assert [p["email"] for p in cli.json("account", "list", "--email", "lead@example.com")] == ["lead@example.com"]
    assert cli.json("run", "get", bob_run, "--email", "lead@example.com")["run_id"] == bob_run  # runs are kept
    again = cli("account", "create", "--email", "bob@example.com", "--team", "acme", ok=False)
    assert "was removed" in again.stderr

    run_id = cli.json("--api-key", lead_key, "run", "--prompt", "Fix it")["run_id"]
    assert cli.json("--api-key", lead_key, "run", "cancel", run_id) == {"run_id": run_id, "state": "CANCELLED"}
    again = cli("--api-key", lead_key, "run", "cancel", run_id, ok=False)
    assert again.returncode == 1 and "is CANCELLED; only queued or running runs can be cancelled" in again.stderr


def test_artifacts_conversation_and_models(cli: Cli, tmp_path: Path):
    from core.events import EventKind, Masker, RunEvent, record
    from core.store import Store
    from tests.support.people import add_file_artifact

    cli("account", "create", "--email", "lead@example.com", "--team", "acme")
    who = ("--email", "lead@example.com")
    run_id = cli.json("run", "--prompt", "Write the report", *who)["run_id"]
    store = Store(f"sqlite:///{tmp_path / 'data' / 'oz-gateway.db'}")
    with store.session() as session:  # what the runner would have recorded
        steps = [RunEvent(kind=EventKind.MESSAGE, text="Writing it."), RunEvent(kind=EventKind.COMMAND, command="ls")]
        record(session, run_id, steps, Masker())
    uid = add_file_artifact(store, run_id, "../../report.md", b"# Report\n", "text/markdown")
    store.dispose()

    said = cli.json("run", "get", run_id, "--conversation", *who)
    assert [(s["kind"], s["what"]) for s in said] == [("message", "Writing it."), ("command", "ls")]

    shown = cli.json("artifact", "get", uid, *who)
    assert shown["data"]["filename"] == "../../report.md" and "/download?expires=" in shown["data"]["download_url"]
    work = tmp_path / "work"
    work.mkdir()
    saved = subprocess.run(
        [sys.executable, "-m", "cli", "--output-format", "json", "artifact", "download", uid, *who],
        capture_output=True,
        text=True,
        cwd=work,
        env=cli.env,
        timeout=60,
    )
    assert saved.returncode == 0, saved.stderr
    assert (work / "report.md").read_bytes() == b"# Report\n"  # the agent's name, never its path
    assert not (tmp_path / "report.md").exists()
    again = subprocess.run(
        [sys.executable, "-m", "cli", "artifact", "download", uid, *who],
        capture_output=True,
        text=True,
        cwd=work,
        env=cli.env,
        timeout=60,
    )
    assert again.returncode == 1 and "exists" in again.stderr

    models = {m["harness"]: m for m in cli.json("model", "list", *who)}
    assert models["claude"]["key"] == "needs one of ANTHROPIC_API_KEY, ANTHROPIC_AUTH_TOKEN, CLAUDE_CODE_OAUTH_TOKEN"
    key_file = tmp_path / "anthropic.key"
    key_file.write_text("sk-ant-test")
    cli("secret", "create", "ANTHROPIC_API_KEY", "--team", "--file", str(key_file), *who)
    models = {m["harness"]: m for m in cli.json("model", "list", *who)}
    assert models["claude"]["key"] == "ready" and "sk-ant-test" not in json.dumps(models)
