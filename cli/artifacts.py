"""``oz-gateway artifact``: a run's file artifacts (as ``oz artifact``), and ``model list``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cli.output import emit
from cli.session import acting_principal, email_option, store_session
from core import artifacts, managed_secrets
from core.errors import invalid
from core.vault import Vault

if TYPE_CHECKING:
    from cli.main import Context


@click.group()
def artifact() -> None:
    """Files runs left in ``.oz/artifacts/`` (and their pull requests, in `run get`)."""


@artifact.command("get")
@click.argument("uid")
@email_option
@click.pass_obj
def artifact_get(ctx: Context, uid: str, email: str | None) -> None:
    """An artifact's name, type, size and a signed download link (15 minutes)."""
    settings = ctx.settings
    with store_session(settings) as session:
        found = artifacts.artifact_response(
            session, acting_principal(session, email), uid, settings.effective_public_url, settings.signing_key()
        )
    emit(found.model_dump(mode="json"), ctx.output_format, ("artifact_uid",))


@artifact.command("download")
@click.argument("uid")
@click.option("--output", "-o", "output", type=click.Path(dir_okay=False, path_type=Path), default=None)
@email_option
@click.pass_obj
def artifact_download(ctx: Context, uid: str, output: Path | None, email: str | None) -> None:
    """Save an artifact (default: its name, made safe, in the current directory; never over a file)."""
    settings = ctx.settings
    with store_session(settings) as session:
        who = acting_principal(session, email)
        artifacts.artifact_response(session, who, uid, settings.effective_public_url, settings.signing_key())
        name, _mime, content = artifacts.download(session, uid)
    # The name is the agent's: only a plain file name of it is used, never a path.
    target = output or Path(re.sub(r"[^A-Za-z0-9._-]", "_", Path(name).name).lstrip(".")[:200] or uid)
    try:
        with open(target, "xb") as out:
            out.write(content)
    except FileExistsError:
        raise invalid(f"{target} exists; choose another with --output") from None
    emit({"uid": uid, "saved": str(target), "bytes": len(content)}, ctx.output_format, ("saved",))


@click.group("model")
def model() -> None:
    """The harnesses and what each needs to run."""


@model.command("list")
@email_option
@click.pass_obj
def model_list(ctx: Context, email: str | None) -> None:
    """Each harness, its model API, and whether a model key is there for you (never its value)."""
    from runner.harness import DRIVERS

    with store_session(ctx.settings) as session:
        who = acting_principal(session, email)
        person = who.uid if who.is_human else None
        rows = []
        for name, make in DRIVERS.items():
            driver = make()
            found, _ = managed_secrets.resolve_secrets(
                session, Vault.from_settings(ctx.settings), who.team_uid, person, list(driver.key_secrets)
            )
            ready = "ready" if found or not driver.key_secrets else f"needs one of {', '.join(driver.key_secrets)}"
            rows.append(
                {
                    "harness": name,
                    "program": driver.program,
                    "model_api": ", ".join(driver.model_hosts),
                    "key": ready,
                    "default": name == ctx.settings.default_harness,
                }
            )
    emit(rows, ctx.output_format, ("harness", "model_api", "key", "default"))
