"""GitHub for one run, through PyGithub: which credential it uses, which repos that credential
can reach, and opening the pull request.

User-triggered runs use the triggering person's token; runs executed by a cloud agent use a
GitHub App installation token (unless the run asks for the CREATOR strategy).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog
from github import Auth, Github, GithubException, GithubIntegration
from sqlalchemy.orm import Session

from core.errors import ErrorCode, OzError
from core.github_auth import authorization_for, mark_stale
from core.models import RepoRef, Run
from core.secrets import Vault
from core.settings import Settings

log = structlog.get_logger(__name__)


@dataclass
class RunCredentials:
    """The token for each repo the run touches; ``kind`` is ``user`` or ``app``."""

    kind: str
    login: str | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    account_uid: str | None = None

    def token_for(self, ref: RepoRef) -> str | None:
        return self.tokens.get(ref.full_name)

    @property
    def secrets(self) -> list[str]:
        return list(self.tokens.values())


def auth_url(settings: Settings, public_url: str | None = None) -> str:
    return f"{(public_url or settings.effective_public_url).rstrip('/')}/auth/github"


def _github(settings: Settings, token: str) -> Github:
    return Github(auth=Auth.Token(token), base_url=settings.github_api_url, retry=None, timeout=30)


def uses_app(run: Run) -> bool:
    return run.executor_kind == "service_account" and run.config.credential_strategy != "CREATOR"


def resolve(session: Session, vault: Vault, settings: Settings, run: Run, repos: list[RepoRef]) -> RunCredentials:
    if not repos:
        return RunCredentials(kind="none")
    if uses_app(run):
        return _app_credentials(settings, repos)
    person = run.creator_uid if run.creator_kind == "user" else None
    authorization = authorization_for(session, vault, person) if person else None
    if authorization is None:
        url = auth_url(settings)
        raise OzError(
            ErrorCode.EXTERNAL_AUTHENTICATION_REQUIRED,
            f"authorize access at {url}",
            title="User is not connected to GitHub",
            provider="github",
            auth_url=url,
        )
    return RunCredentials(
        kind="user",
        login=authorization.login,
        account_uid=person,
        tokens={r.full_name: authorization.token for r in repos},
    )


def _app_credentials(settings: Settings, repos: list[RepoRef]) -> RunCredentials:
    key = settings.app_private_key()
    if not settings.github_app_id or not key:
        raise OzError(
            ErrorCode.EXTERNAL_AUTHENTICATION_REQUIRED,
            title="The team GitHub App is not configured, so agent runs cannot reach GitHub",
            provider="github",
            auth_url=auth_url(settings),
        )
    integration = GithubIntegration(auth=Auth.AppAuth(settings.github_app_id, key), base_url=settings.github_api_url)
    tokens: dict[str, str] = {}
    by_installation: dict[int, str] = {}
    missing = []
    for ref in repos:
        try:
            installation = integration.get_repo_installation(ref.owner, ref.repo)
        except GithubException:
            missing.append(ref.full_name)
            continue
        if installation.id not in by_installation:
            by_installation[installation.id] = integration.get_access_token(installation.id).token
        tokens[ref.full_name] = by_installation[installation.id]
    if missing:
        raise _inaccessible(settings, missing, "The GitHub App is not installed on")
    return RunCredentials(kind="app", tokens=tokens)


def _inaccessible(settings: Settings, names: list[str], lead: str) -> OzError:
    listed = ", ".join(names)
    return OzError(
        ErrorCode.EXTERNAL_AUTHENTICATION_REQUIRED,
        f"inaccessible repos: {listed}",
        title=f"{lead} the following repositories in the environment: {listed}",
        provider="github",
        auth_url=auth_url(settings),
        inaccessible_repos=names,
    )


def check_access(session: Session, settings: Settings, credentials: RunCredentials, repos: list[RepoRef]) -> None:
    """Every repo must be readable with its token before anything is cloned."""
    inaccessible = []
    for ref in repos:
        token = credentials.token_for(ref)
        try:
            repo = _github(settings, token).get_repo(ref.full_name) if token else None
            if repo is None or not (repo.permissions and repo.permissions.pull):
                inaccessible.append(ref.full_name)
        except GithubException as exc:
            if exc.status == 401 and credentials.kind == "user" and credentials.account_uid:
                mark_stale(session, credentials.account_uid)  # revoked: ask the person again next time
                raise OzError(
                    ErrorCode.EXTERNAL_AUTHENTICATION_REQUIRED,
                    "GitHub rejected the stored token",
                    title="Your GitHub authorization has expired or was revoked",
                    provider="github",
                    auth_url=auth_url(settings),
                ) from None
            inaccessible.append(ref.full_name)
    if inaccessible:
        lead = "User does not have access to" if credentials.kind == "user" else "The GitHub App cannot access"
        raise _inaccessible(settings, inaccessible, lead)


def open_pull_request(
    settings: Settings, token: str, ref: RepoRef, *, head: str, base: str, title: str, body: str
) -> str:
    """Open the PR and return its URL; a refusal becomes ``not_authorized`` with GitHub's reason."""
    try:
        repo = _github(settings, token).get_repo(ref.full_name)
        pull = repo.create_pull(base=base, head=head, title=title, body=body, maintainer_can_modify=True)
    except GithubException as exc:
        message = exc.data.get("message") if isinstance(exc.data, dict) else str(exc)
        raise OzError(
            ErrorCode.NOT_AUTHORIZED, f"GitHub refused to open the pull request on {ref}: {message}"
        ) from None
    return pull.html_url
