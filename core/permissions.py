"""Who may act on what the whole team relies on, and on whose runs.

A team's admins change its integrations, cloud agents (``on_behalf_of`` included) and team
secrets; everyone else uses them.  A run is steered — followed up, cancelled — only by the one
who started it (the person, or the agent key whose cloud agent it is) or an admin: a follow-up
executes with the creator's GitHub token and secrets, so anyone else steering it would act
in the creator's name.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.errors import ErrorCode, OzError
from core.models import Principal, Run
from core.store.tables import AccountRow


def is_admin(session: Session, principal: Principal) -> bool:
    if not principal.is_human:
        return False
    row = session.get(AccountRow, principal.uid)
    return bool(row is not None and row.is_admin and row.team_uid == principal.team_uid)


def require_admin(session: Session, principal: Principal, action: str) -> None:
    if not is_admin(session, principal):
        raise OzError(
            ErrorCode.NOT_AUTHORIZED,
            f"only a team admin can {action} (an admin promotes people with `oz-gateway account promote`)",
        )


def may_steer(session: Session, principal: Principal, run: Run) -> bool:
    """The run's creator, the cloud agent whose key started it, or an admin."""
    if principal.uid == run.creator_uid:
        return True
    if not principal.is_human and run.creator_kind == "service_account" and principal.uid == run.executor_uid:
        return True
    return is_admin(session, principal)


def require_steer(session: Session, principal: Principal, run: Run, action: str) -> None:
    if not may_steer(session, principal, run):
        raise OzError(
            ErrorCode.NOT_AUTHORIZED,
            f"only the person who started run {run.run_id} (or a team admin) can {action} it; start a run of your own",
            title=f"Only the person who started this run (or a team admin) can {action} it",
        )
