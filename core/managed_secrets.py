"""Managed secrets: values a team or a person stores once and runs receive as environment
variables.  Values are encrypted at rest and never returned by listing; a person's own
secret of a name takes precedence over the team's."""

from __future__ import annotations

import re
from typing import Literal

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from core.errors import ErrorCode, OzError, invalid, not_found
from core.ids import new_uid
from core.models import Principal
from core.permissions import require_admin
from core.store import utcnow
from core.store.tables import ManagedSecretRow
from core.vault import Vault

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MAX_VALUE_BYTES = 64 * 1024
Scope = Literal["team", "personal"]


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise invalid(f"secret name {name!r} must be a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)")
    return name


def _owner(session: Session, principal: Principal, scope: Scope) -> str:
    """Whose secret a write touches: one's own personal secrets, or — admins only — the team's.
    An agent key writes none (a prompt-injected agent holding one must not plant values)."""
    if not principal.is_human:
        raise OzError(ErrorCode.NOT_AUTHORIZED, "agent keys cannot change managed secrets")
    if scope == "personal":
        return principal.uid
    require_admin(session, principal, "change the team's secrets")
    return ""


def put_secret(session: Session, vault: Vault, principal: Principal, name: str, value: str, scope: Scope) -> None:
    """Create or replace a secret."""
    check_name(name)
    if not value:
        raise invalid("a secret needs a value")
    if len(value.encode()) > MAX_VALUE_BYTES:
        raise invalid(f"a secret value may be at most {MAX_VALUE_BYTES} bytes")
    owner = _owner(session, principal, scope)
    now = utcnow()
    row = session.scalar(
        select(ManagedSecretRow).where(
            ManagedSecretRow.team_uid == principal.team_uid,
            ManagedSecretRow.account_uid == owner,
            ManagedSecretRow.name == name,
        )
    )
    if row is None:
        row = ManagedSecretRow(uid=new_uid(), team_uid=principal.team_uid, account_uid=owner, name=name, created_at=now)
        session.add(row)
    row.value_encrypted = vault.encrypt(value)
    row.updated_at = now


def list_secrets(session: Session, principal: Principal) -> list[dict]:
    """Names and scopes the caller can use — never values."""
    rows = session.scalars(
        select(ManagedSecretRow)
        .where(
            ManagedSecretRow.team_uid == principal.team_uid,
            or_(ManagedSecretRow.account_uid == "", ManagedSecretRow.account_uid == principal.uid),
        )
        .order_by(ManagedSecretRow.name, ManagedSecretRow.account_uid)
    )
    return [
        {"name": r.name, "scope": "personal" if r.account_uid else "team", "updated_at": r.updated_at} for r in rows
    ]


def delete_secret(session: Session, principal: Principal, name: str, scope: Scope) -> None:
    row = session.scalar(
        select(ManagedSecretRow).where(
            ManagedSecretRow.team_uid == principal.team_uid,
            ManagedSecretRow.account_uid == _owner(session, principal, scope),
            ManagedSecretRow.name == name,
        )
    )
    if row is None:
        raise not_found(f"{scope} secret", name)
    session.delete(row)


def resolve_secrets(
    session: Session, vault: Vault, team_uid: str, account_uid: str | None, names: list[str]
) -> tuple[dict[str, str], list[str]]:
    """Values for ``names`` (personal over team) and the names that exist in neither scope."""
    if not names:
        return {}, []
    owners = ["", account_uid] if account_uid else [""]
    rows = session.scalars(
        select(ManagedSecretRow).where(
            ManagedSecretRow.team_uid == team_uid,
            ManagedSecretRow.name.in_(names),
            ManagedSecretRow.account_uid.in_(owners),
        )
    )
    chosen: dict[str, ManagedSecretRow] = {}
    for row in rows:
        if row.name not in chosen or row.account_uid:  # a personal one wins
            chosen[row.name] = row
    values = {name: vault.decrypt(row.value_encrypted) for name, row in chosen.items()}
    return values, [n for n in names if n not in values]


def personal_names(session: Session, team_uid: str, account_uid: str | None, names: list[str]) -> set[str]:
    """Which of ``names`` the person has a secret of their own by (it wins over the team's)."""
    if not account_uid or not names:
        return set()
    return set(
        session.scalars(
            select(ManagedSecretRow.name).where(
                ManagedSecretRow.team_uid == team_uid,
                ManagedSecretRow.name.in_(names),
                ManagedSecretRow.account_uid == account_uid,
            )
        )
    )


def rotate_all(session: Session, vault: Vault) -> int:
    """Re-encrypt every stored secret under the newest key; returns how many."""
    count = 0
    for row in session.scalars(select(ManagedSecretRow)):
        row.value_encrypted = vault.rotate(row.value_encrypted)
        count += 1
    return count
