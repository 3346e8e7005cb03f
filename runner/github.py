"""GitHub for one run, through PyGithub: which credential it uses, which repos that credential
can reach, and opening the pull request.

User-triggered runs use the triggering person's token; runs executed by a cloud agent use a
GitHub App installation token (unless the run asks for the CREATOR strategy).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import ParamSpec, TypeVar

import requests
import structlog
from github import Auth, GithubException, GithubIntegration

from core import github_oauth, github_orgs
from core.errors import ErrorCode, OzError
from core.github_auth import authorization_for
from core.github_oauth import authorize_page, github_client
from core.models import RepoRef, Run
from core.settings import Settings
from core.store import Store
from core.vault import Vault

log = structlog.get_logger(__name__)
P = ParamSpec("P")
T = TypeVar("T")


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


def auth_url(settings: Settings, account_uid: str | None = None) -> str:
    """Where to fix a GitHub problem.  Never a signed link: run errors are posted in shared
    Slack threads and Linear or GitHub comments, where someone else could use it to bind their
    GitHub to the person; the page asks whoever opens it to sign in as themselves."""
    return authorize_page(settings)


_TOKEN_MARGIN = timedelta(minutes=5)
_installation_tokens: dict[tuple[str, int, tuple[str, ...]], tuple[str, datetime]] = {}
"""Installation tokens minted by this process, per set of repos, reused until shortly before
they expire."""


def _installation_token(
    integration: GithubIntegration, settings: Settings, installation_id: int, repos: list[str]
) -> str:
    """A token for ``repos`` (names within the installation's account) and nothing else the
    installation covers: a run's token can reach only the run's repos.  PyGithub's
    ``get_access_token`` cannot narrow, so the documented endpoint goes through its requester."""
    names = tuple(sorted(set(repos)))
    key = (settings.github_api_url, installation_id, names)
    cached = _installation_tokens.get(key)
    if cached and cached[1] - _TOKEN_MARGIN > datetime.now(UTC):
        return cached[0]
    _headers, grant = integration.requester.requestJsonAndCheck(
        "POST", f"/app/installations/{installation_id}/access_tokens", input={"repositories": list(names)}
    )
    expires = datetime.fromisoformat(grant["expires_at"].replace("Z", "+00:00")).astimezone(UTC)
    _installation_tokens[key] = (grant["token"], expires)
    return grant["token"]


def _refresher(settings: Settings):
    if not settings.github_oauth_client_id:
        return None

    def refresh(refresh_token: str) -> tuple[str, str | None, datetime | None]:
        grant = github_oauth.refresh(settings, refresh_token)
        return grant.token, grant.refresh_token, grant.expires_at

    return refresh


def answering(call: Callable[P, T]) -> Callable[P, T]:
    """A GitHub that does not answer (a timeout, a refused connection) ends the call as
    ``resource_unavailable`` naming GitHub, not as an internal error."""

    @functools.wraps(call)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return call(*args, **kwargs)
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise OzError(
                ErrorCode.RESOURCE_UNAVAILABLE,
                f"{type(exc).__name__}; the run can be retried",
                title="GitHub did not answer",
            ) from None

    return guarded


def uses_app(run: Run) -> bool:
    return run.executor_kind == "service_account" and run.config.credential_strategy != "CREATOR"


@answering
def resolve(store: Store, vault: Vault, settings: Settings, run: Run, repos: list[RepoRef]) -> RunCredentials:
    """The run's credential for each repo.  Store reads and writes are short transactions of
    their own; every call to GitHub happens outside them."""
    if not repos:
        return RunCredentials(kind="none")
    if settings.github_token is not None:
        token = settings.github_token.get_secret_value()
        return RunCredentials(kind="token", tokens={r.full_name: token for r in repos})
    if uses_app(run):
        return _app_credentials(store, settings, run.team_uid, repos)
    person = run.creator_uid if run.creator_kind == "user" else None
    authorization = authorization_for(store, vault, person, _refresher(settings)) if person else None
    if authorization is None:
        if _all_public(settings, repos):  # readable by anyone; nothing will be pushed
            return RunCredentials(kind="anonymous", account_uid=person)
        url = auth_url(settings, person)
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


def _all_public(settings: Settings, repos: list[RepoRef]) -> bool:
    client = github_client(settings)
    try:
        return all(not client.get_repo(r.full_name).private for r in repos)
    except GithubException:
        return False


def _app_credentials(store: Store, settings: Settings, team_uid: str, repos: list[RepoRef]) -> RunCredentials:
    """Installation tokens, only for repos in GitHub orgs the team enabled (the Admin Panel's
    "Enabled GitHub Orgs") and inside the installation's current scope."""
    key = settings.app_private_key()
    if not settings.github_app_id or not key:
        raise OzError(
            ErrorCode.EXTERNAL_AUTHENTICATION_REQUIRED,
            title="The team GitHub App is not configured, so agent runs cannot reach GitHub",
            provider="github",
            auth_url=auth_url(settings),
        )
    with store.reader() as session:
        not_enabled = [r.full_name for r in repos if not github_orgs.org_enabled(session, team_uid, r.owner)]
        out_of_scope = [
            ref.full_name
            for ref in repos
            if (known := github_orgs.installation_for(session, ref.owner)) is not None
            and not github_orgs.installation_covers(known, ref.full_name)
        ]
    if not_enabled:
        raise _inaccessible(settings, not_enabled, "GitHub orgs not enabled for this team hold")
    if out_of_scope:
        raise _inaccessible(settings, out_of_scope, "The GitHub App installation does not include")
    integration = GithubIntegration(
        auth=Auth.AppAuth(settings.github_app_id, key),
        base_url=settings.github_api_url,
        timeout=settings.outbound_timeout_seconds,
    )
    by_installation: dict[int, list[RepoRef]] = {}
    missing = []
    for ref in repos:
        try:
            installation = integration.get_repo_installation(ref.owner, ref.repo)
        except GithubException:
            missing.append(ref.full_name)
            continue
        by_installation.setdefault(installation.id, []).append(ref)
    if missing:
        raise _inaccessible(settings, missing, "The GitHub App is not installed on")
    tokens: dict[str, str] = {}
    for installation_id, refs in by_installation.items():
        token = _installation_token(integration, settings, installation_id, [r.repo for r in refs])
        tokens.update((r.full_name, token) for r in refs)
    return RunCredentials(kind="app", tokens=tokens)


def _inaccessible(settings: Settings, names: list[str], lead: str, account_uid: str | None = None) -> OzError:
    listed = ", ".join(names)
    return OzError(
        ErrorCode.EXTERNAL_AUTHENTICATION_REQUIRED,
        f"inaccessible repos: {listed}",
        title=f"{lead} the following repositories in the environment: {listed}",
        provider="github",
        auth_url=auth_url(settings, account_uid),
        inaccessible_repos=names,
    )


class Revoked(Exception):
    """GitHub rejected a person's stored token: their authorization must be marked stale."""

    def __init__(self, account_uid: str, error: OzError) -> None:
        super().__init__(error.message)
        self.account_uid = account_uid
        self.error = error


@answering
def check_access(settings: Settings, credentials: RunCredentials, repos: list[RepoRef]) -> None:
    """Every repo must be readable with its token before anything is cloned.

    Raises :class:`Revoked` when GitHub refuses a person's token, so the caller can record
    that in a transaction of its own (this one is about to fail).
    """
    if credentials.kind in ("anonymous", "token"):
        return  # all public (checked in resolve), or a token GitHub itself scoped to the repo
    inaccessible = []
    for ref in repos:
        token = credentials.token_for(ref)
        try:
            repo = github_client(settings, token).get_repo(ref.full_name) if token else None
            if repo is None or not (repo.permissions and repo.permissions.pull):
                inaccessible.append(ref.full_name)
        except GithubException as exc:
            if exc.status == 401 and credentials.kind == "user" and credentials.account_uid:
                url = auth_url(settings, credentials.account_uid)
                raise Revoked(
                    credentials.account_uid,
                    OzError(
                        ErrorCode.EXTERNAL_AUTHENTICATION_REQUIRED,
                        f"GitHub rejected the stored token; authorize again at {url}",
                        title="Your GitHub authorization has expired or was revoked",
                        provider="github",
                        auth_url=url,
                    ),
                ) from None
            inaccessible.append(ref.full_name)
    if inaccessible:
        lead = "User does not have access to" if credentials.kind == "user" else "The GitHub App cannot access"
        raise _inaccessible(settings, inaccessible, lead, credentials.account_uid)


@answering
def open_pull_request(
    settings: Settings, token: str, ref: RepoRef, *, head: str, base: str, title: str, body: str
) -> str:
    """Open the PR and return its URL; a refusal becomes ``not_authorized`` with GitHub's reason."""
    try:
        repo = github_client(settings, token).get_repo(ref.full_name)
        pull = repo.create_pull(base=base, head=head, title=title, body=body, maintainer_can_modify=True)
    except GithubException as exc:
        message = exc.data.get("message") if isinstance(exc.data, dict) else str(exc)
        if exc.status >= 500:
            raise OzError(
                ErrorCode.RESOURCE_UNAVAILABLE, f"HTTP {exc.status}: {message}", title="GitHub did not answer"
            ) from None
        raise OzError(
            ErrorCode.NOT_AUTHORIZED, f"GitHub refused to open the pull request on {ref}: {message}"
        ) from None
    return pull.html_url


@answering
def open_pull_request_for(settings: Settings, token: str, ref: RepoRef, branch: str) -> str | None:
    """The open PR whose head is ``branch`` (an earlier execution's), so a re-run updates it
    rather than asking GitHub for a second one it would refuse."""
    try:
        repo = github_client(settings, token).get_repo(ref.full_name)
        found = next(iter(repo.get_pulls(state="open", head=f"{ref.owner}:{branch}")), None)
    except GithubException:
        return None
    return found.html_url if found is not None else None
