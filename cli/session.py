"""What every admin and run command needs: the store, and who is acting."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import click
from sqlalchemy.orm import Session

from core.accounts import account_by_email
from core.keys import authenticate
from core.models import Principal
from core.settings import Settings
from core.store import Store


@contextmanager
def store_session(settings: Settings) -> Iterator[Session]:
    store = Store(settings.effective_database_url)
    store.migrate()
    try:
        with store.session() as session:
            yield session
    finally:
        store.dispose()


def acting_principal(session: Session, email: str | None) -> Principal:
    """``--email`` (operator acting for a person) or ``WARP_API_KEY`` (the key's principal)."""
    if email:
        account = account_by_email(session, email)
        return Principal(
            kind="user",
            uid=account.uid,
            team_uid=account.team_uid,
            email=account.email,
            display_name=account.display_name,
        )
    raw = _api_key()
    if raw:
        return authenticate(session, raw)
    raise click.UsageError("say who is acting: pass --email, --api-key or set WARP_API_KEY")


def _api_key() -> str | None:
    """``--api-key`` on the command line, else ``WARP_API_KEY``."""
    context = click.get_current_context(silent=True)
    root = context.find_root().obj if context is not None else None
    return getattr(root, "api_key", None) or os.environ.get("WARP_API_KEY")


email_option = click.option("--email", default=None, help="Act as this person (default: the WARP_API_KEY's owner).")
