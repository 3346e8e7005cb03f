"""Which GitHub organizations a team may reach through the team GitHub App, and the App's
installations as its webhooks report them (so a run can be refused before any call)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import invalid, not_found
from core.store import utcnow
from core.store.tables import EnabledGitHubOrgRow, GitHubInstallationRow


def _norm(org: str) -> str:
    org = org.strip()
    if not org or "/" in org:
        raise invalid(f"{org!r} is not a GitHub organization name")
    return org


def enable_org(session: Session, team_uid: str, org: str) -> None:
    org = _norm(org)
    if session.get(EnabledGitHubOrgRow, (team_uid, org)) is None:
        session.add(EnabledGitHubOrgRow(team_uid=team_uid, org=org, created_at=utcnow()))


def disable_org(session: Session, team_uid: str, org: str) -> None:
    row = session.get(EnabledGitHubOrgRow, (team_uid, _norm(org)))
    if row is None:
        raise not_found("enabled GitHub org", org)
    session.delete(row)


def enabled_orgs(session: Session, team_uid: str) -> list[str]:
    return list(
        session.scalars(
            select(EnabledGitHubOrgRow.org)
            .where(EnabledGitHubOrgRow.team_uid == team_uid)
            .order_by(EnabledGitHubOrgRow.org)
        )
    )


def org_enabled(session: Session, team_uid: str, org: str) -> bool:
    return bool(
        session.scalar(
            select(func.count()).where(
                EnabledGitHubOrgRow.team_uid == team_uid, func.lower(EnabledGitHubOrgRow.org) == org.lower()
            )
        )
    )


def save_installation(
    session: Session,
    installation_id: int,
    account: str,
    selection: str,
    repositories: list[str] | None,
    suspended: bool = False,
) -> None:
    row = session.get(GitHubInstallationRow, installation_id)
    if row is None:
        row = GitHubInstallationRow(installation_id=installation_id, repositories=[])
        session.add(row)
    row.account_login = account
    row.repository_selection = selection
    if repositories is not None:
        row.repositories = sorted(set(repositories))
    row.suspended = suspended
    row.updated_at = utcnow()


def change_repositories(
    session: Session, installation_id: int, selection: str, added: list[str], removed: list[str]
) -> None:
    row = session.get(GitHubInstallationRow, installation_id)
    if row is None:
        return
    row.repositories = sorted((set(row.repositories) | set(added)) - set(removed))
    row.repository_selection = selection
    row.updated_at = utcnow()


def delete_installation(session: Session, installation_id: int) -> None:
    row = session.get(GitHubInstallationRow, installation_id)
    if row is not None:
        session.delete(row)


def installation_for(session: Session, owner: str) -> GitHubInstallationRow | None:
    return session.scalar(
        select(GitHubInstallationRow).where(func.lower(GitHubInstallationRow.account_login) == owner.lower())
    )


def installation_covers(row: GitHubInstallationRow, full_name: str) -> bool:
    if row.suspended:
        return False
    return row.repository_selection == "all" or full_name.lower() in {r.lower() for r in row.repositories}
