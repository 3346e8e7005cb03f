"""Managed secrets: encrypted at rest, given to their run's processes only, masked
everywhere else, listed by name only; and key rotation."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import docker
import httpx
from cryptography.fernet import Fernet
from sqlalchemy import text

from core.managed_secrets import put_secret, resolve_secrets
from core.store import Store
from core.vault import Vault
from runner.context import WorkerContext
from runner.job import run_job
from runner.sandbox import containers_of
from tests.live_server import LiveServer
from tests.runner.test_execution import events_of, final
from tests.runner_support import Person, with_settings

VALUE = "s3cr3t-deploy-token-6f2a"


def test_secret_reaches_its_run_only_and_is_masked(
    ctx: WorkerContext,
    alice: Person,
    store: Store,
    make_env,
    start_run,
    docker_client: docker.DockerClient,
    capsys,
):
    with store.session() as session:
        put_secret(session, ctx.vault, alice.principal, "DEPLOY_TOKEN", VALUE, "team")
    ctx = with_settings(
        ctx, command_harness="/bin/sh -c 'echo token is $DEPLOY_TOKEN; env; sleep 2'", command_harness_format="text"
    )
    with_secret = start_run(alice.principal, make_env_with(store, alice, make_env, ["DEPLOY_TOKEN"]))
    without = start_run(alice.principal, make_env())
    seen: dict[str, str] = {}
    finished: set[str] = set()

    def inspect(run_id: str) -> None:
        """Every container of the run while it runs (a short-lived helper may be gone between
        the list and the look: skipped)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and run_id not in finished:
            for container in containers_of(docker_client, run_id):
                try:
                    env = str(docker_client.api.inspect_container(container.id)["Config"]["Env"])
                except docker.errors.NotFound:
                    continue
                seen[run_id] = seen.get(run_id, "") + env
            time.sleep(0.05)

    for run_id in (with_secret, without):
        spy = threading.Thread(target=inspect, args=(run_id,))
        spy.start()
        assert run_job(ctx, run_id) == "SUCCEEDED"
        finished.add(run_id)
        spy.join()

    # Its agent's process has it (``env`` printed it, masked); no container's configuration
    # does — not even its own, where ``docker inspect`` or ``docker commit`` would find it.
    transcript = "\n".join(e.model_dump_json() for e in events_of(store, with_secret))
    assert "token is ********" in transcript and "DEPLOY_TOKEN=********" in transcript
    assert VALUE not in transcript
    assert "DEPLOY_TOKEN" not in "\n".join(e.model_dump_json() for e in events_of(store, without))
    assert seen[with_secret] and VALUE not in seen[with_secret] and VALUE not in seen[without]
    assert VALUE not in final(store, with_secret).model_dump_json()
    assert VALUE not in capsys.readouterr().out  # nor in our logs


def make_env_with(store: Store, alice: Person, make_env, names: list[str]) -> str:
    from core.environments import update_environment

    env_id = make_env()
    with store.session() as session:
        update_environment(session, alice.principal, env_id, add_secrets=names)
    return env_id


def test_a_missing_secret_fails_setup_and_personal_beats_team(
    ctx: WorkerContext,
    alice: Person,
    store: Store,
    make_env,
    start_run,
):
    run_id = start_run(alice.principal, make_env_with(store, alice, make_env, ["NOPE"]))
    assert run_job(ctx, run_id) == "FAILED"
    assert final(store, run_id).status_message.message.startswith("Secrets not defined: NOPE")
    with store.session() as session:
        put_secret(session, ctx.vault, alice.principal, "API_KEY", "team-value-000", "team")
        put_secret(session, ctx.vault, alice.principal, "API_KEY", "alice-value-111", "personal")
    with store.reader() as session:
        values, missing = resolve_secrets(
            session, ctx.vault, alice.principal.team_uid, alice.principal.uid, ["API_KEY"]
        )
        team_only, _ = resolve_secrets(session, ctx.vault, alice.principal.team_uid, None, ["API_KEY"])
    assert values == {"API_KEY": "alice-value-111"} and missing == []
    assert team_only == {"API_KEY": "team-value-000"}


def test_secrets_api_takes_values_and_returns_names(gateway: LiveServer, store: Store):
    from core.accounts import create_account
    from core.keys import create_key

    with store.session() as session:
        _, key = create_key(session, create_account(session, "sam@example.com", "acme"), "k")
    auth = {"Authorization": f"Bearer {key}"}
    created = httpx.post(f"{gateway.api_url}/secrets", json={"name": "SENTRY_DSN", "value": VALUE}, headers=auth)
    assert created.status_code == 201
    listed = httpx.get(f"{gateway.api_url}/secrets", headers=auth).json()
    assert [(s["name"], s["scope"]) for s in listed["secrets"]] == [("SENTRY_DSN", "team")]
    assert VALUE not in str(listed)
    bad = httpx.post(f"{gateway.api_url}/secrets", json={"name": "not valid!", "value": "x"}, headers=auth)
    assert bad.status_code == 400 and "environment variable name" in bad.json()["detail"]
    assert httpx.delete(f"{gateway.api_url}/secrets/SENTRY_DSN", headers=auth).status_code == 204
    assert httpx.delete(f"{gateway.api_url}/secrets/SENTRY_DSN", headers=auth).status_code == 404
    with store.reader() as session:
        assert VALUE not in str(session.execute(text("SELECT * FROM managed_secrets")).all())


def test_cli_reads_the_value_from_stdin_and_rotates_keys(tmp_path, database_url: str):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OZGW_")}
    env.update(OZGW_DATA_DIR=str(tmp_path / "d"), OZGW_ENCRYPTION_KEYS=old)

    def cli(*args: str, stdin: str | None = None, keys: str = old) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "cli", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env={**env, "OZGW_ENCRYPTION_KEYS": keys},
            timeout=60,
            check=True,
        )

    cli("account", "create", "--email", "ops@example.com", "--team", "ops")
    cli("secret", "create", "NPM_TOKEN", "--team", "--email", "ops@example.com", stdin=VALUE + "\n")
    listed = cli("--output-format", "json", "secret", "list", "--email", "ops@example.com").stdout
    assert '"NPM_TOKEN"' in listed and VALUE not in listed

    rotated = cli("--output-format", "json", "secret", "rotate-keys", keys=f"{new},{old}").stdout
    assert '"re_encrypted": 1' in rotated
    from core.store.tables import ManagedSecretRow

    store = Store(f"sqlite:///{tmp_path / 'd' / 'oz-gateway.db'}")
    with store.reader() as session:
        row = session.query(ManagedSecretRow).one()
        assert Vault([new.encode()]).decrypt(row.value_encrypted) == VALUE  # the new key alone reads it
    store.dispose()
