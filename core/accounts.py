"""Teams and the people in them.

A team is created with its default cloud agent in the same transaction: the reference
promises every team has one, so no code path may observe a team without it.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from core.errors import ErrorCode, OzError, invalid, not_found
from core.ids import new_uid
from core.models import Account, Principal, Team
from core.permissions import require_admin
from core.store.tables import (
    AccountRow,
    AgentRow,
    ApiKeyRow,
    ExternalIdentityRow,
    GitHubAuthorizationRow,
    ManagedSecretRow,
    TeamRow,
    utcnow,
)

DEFAULT_AGENT_NAME = "Default agent"


def get_or_create_team(session: Session, name: str) -> Team:
    row = session.scalar(select(TeamRow).where(TeamRow.name == name))
    if row is None:
        now = utcnow()
        row = TeamRow(uid=new_uid(), name=name, created_at=now)
        session.add(row)
        session.flush()  # no ORM relationships: the team row must exist before its agent
        session.add(
            AgentRow(
                uid=new_uid(),
                team_uid=row.uid,
                name=DEFAULT_AGENT_NAME,
                is_default=True,
                settings={},
                created_at=now,
                updated_at=now,
            )
        )
        session.flush()
    return Team.model_validate(row)


def create_account(
    session: Session,
    email: str,
    team_name: str | None = None,
    display_name: str | None = None,
    *,
    admin: bool | None = None,
) -> Account:
    """Create a person; without a team name each person gets a team of their own.  A team's
    first account is its admin unless ``admin`` says otherwise."""
    email = email.strip().lower()
    if "@" not in email or email.startswith("@") or email.endswith("@"):
        raise invalid(f"{email!r} is not an email address")
    existing = session.scalar(select(AccountRow).where(AccountRow.email == email))
    if existing is not None:
        state = "was removed (its runs are kept)" if existing.removed_at else "already exists"
        raise OzError(ErrorCode.CONFLICT, f"an account with email {email} {state}")
    team = get_or_create_team(session, team_name or f"{email}'s team")
    if admin is None:
        admin = session.scalar(select(AccountRow.uid).where(AccountRow.team_uid == team.uid).limit(1)) is None
    row = AccountRow(
        uid=new_uid(), email=email, display_name=display_name, team_uid=team.uid, is_admin=admin, created_at=utcnow()
    )
    session.add(row)
    session.flush()
    return Account.model_validate(row)


def set_admin(session: Session, email: str, admin: bool) -> Account:
    row = _live(session, email)
    row.is_admin = admin
    session.flush()
    return Account.model_validate(row)


def _live(session: Session, email: str) -> AccountRow:
    row = session.scalar(
        select(AccountRow).where(AccountRow.email == email.strip().lower(), AccountRow.removed_at.is_(None))
    )
    if row is None:
        raise not_found("account", email)
    return row


def account_by_email(session: Session, email: str) -> Account:
    return Account.model_validate(_live(session, email))


def remove_account(session: Session, principal: Principal, email: str) -> Account:
    """An admin removes a person: their personal keys are revoked, their Slack/Linear links,
    GitHub authorization and personal secrets deleted, admin dropped — and their runs kept, for
    audit, still naming them."""
    require_admin(session, principal, "remove an account")
    row = _live(session, email)
    if row.team_uid != principal.team_uid:
        raise not_found("account", email)
    if row.uid == principal.uid:
        raise invalid("you cannot remove yourself; another admin can")
    now = utcnow()
    session.execute(
        update(ApiKeyRow)
        .where(ApiKeyRow.account_uid == row.uid, ApiKeyRow.agent_uid.is_(None), ApiKeyRow.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    session.execute(delete(ExternalIdentityRow).where(ExternalIdentityRow.account_uid == row.uid))
    session.execute(delete(GitHubAuthorizationRow).where(GitHubAuthorizationRow.account_uid == row.uid))
    session.execute(
        delete(ManagedSecretRow).where(
            ManagedSecretRow.team_uid == row.team_uid, ManagedSecretRow.account_uid == row.uid
        )
    )
    row.is_admin, row.removed_at = False, now
    session.flush()
    return Account.model_validate(row)


def team_by_uid(session: Session, uid: str) -> Team:
    row = session.get(TeamRow, uid)
    if row is None:
        raise not_found("team", uid)
    return Team.model_validate(row)


def list_accounts(session: Session, team_uid: str) -> list[Account]:
    live = (AccountRow.team_uid == team_uid, AccountRow.removed_at.is_(None))
    rows = session.scalars(select(AccountRow).where(*live).order_by(AccountRow.created_at))
    return [Account.model_validate(row) for row in rows]


def is_live(session: Session, uid: str) -> bool:
    """The account exists and was not removed (a console session without a key ends with it)."""
    row = session.get(AccountRow, uid)
    return row is not None and row.removed_at is None
