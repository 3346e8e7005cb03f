"""A small GitHub REST API on 127.0.0.1 for PyGithub: repos with per-user permissions, pull
requests, and a GitHub App whose JWTs are verified and whose installations mint tokens.

It records every call (with the caller's identity) so tests can assert which credential
was used, and what was created.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import jwt
from aiohttp import web

from tests.live_server import FakeService, LiveServer

PERMISSIONS = {
    "admin": {"admin": True, "maintain": True, "push": True, "triage": True, "pull": True},
    "write": {"admin": False, "maintain": False, "push": True, "triage": True, "pull": True},
    "read": {"admin": False, "maintain": False, "push": False, "triage": False, "pull": True},
}


@dataclass
class FakeRepo:
    owner: str
    name: str
    default_branch: str = "main"
    private: bool = True
    collaborators: dict[str, str] = field(default_factory=dict)
    installation_id: int | None = None
    files: dict[str, str] = field(default_factory=dict)
    """What the contents API serves, by path (a value starting ``symlink:`` is a link)."""

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass
class Caller:
    login: str | None = None
    installation_id: int | None = None
    app: bool = False
    repositories: frozenset[str] | None = None
    """The repos an installation token was narrowed to (``None``: all of the installation's)."""


class FakeGitHub(FakeService):
    def __init__(self, app_id: str | None = None, app_public_key: str | None = None) -> None:
        self.app_id = app_id
        self.app_public_key = app_public_key
        self.user_tokens: dict[str, str] = {}
        self.installation_tokens: dict[str, int] = {}
        self.token_repositories: dict[str, frozenset[str] | None] = {}
        self.repos: dict[str, FakeRepo] = {}
        self.pulls: list[dict] = []
        self.calls: list[tuple[str, str, Caller]] = []
        # OAuth: who is "signed in" in the browser, the OAuth app, codes and refresh tokens issued.
        self.browser_login: str | None = None
        self.oauth_client: tuple[str, str] | None = None
        self.token_lifetime: int | None = None
        self.codes: dict[str, str] = {}
        self.refresh_tokens: dict[str, str] = {}
        # Issues and pull requests of the Actions tests: (repo, number) → issue JSON, comments.
        self.issues: dict[tuple[str, int], dict] = {}
        self.comments: dict[tuple[str, int], list[dict]] = {}
        self.comment_edits: dict[int, list[str]] = {}
        self.pull_files: dict[tuple[str, int], list[str]] = {}
        self.review_comments: dict[int, dict] = {}
        self._next_comment_id = 1000
        self.held_suffix: str | None = None
        self.arrived, self.release = threading.Event(), threading.Event()
        self.server = LiveServer(self._app())

    # --- setup ------------------------------------------------------------------------------

    def add_user(self, login: str) -> str:
        token = "ghu_" + secrets.token_hex(16)
        self.user_tokens[token] = login
        return token

    def revoke(self, token: str) -> None:
        self.user_tokens.pop(token, None)

    def _grant_for(self, login: str) -> dict:
        token = self.add_user(login)
        grant = {"access_token": token, "token_type": "bearer", "scope": "repo"}
        if self.token_lifetime is not None:
            refresh = "ghr_" + secrets.token_hex(16)
            self.refresh_tokens[refresh] = login
            grant.update(expires_in=self.token_lifetime, refresh_token=refresh, refresh_token_expires_in=15897600)
        return grant

    def add_issue(self, repo: str, issue: dict, comments: list[dict] = (), files: list[str] | None = None) -> None:
        number = issue["number"]
        api = f"{self.url}/repos/{repo}/issues/{number}"
        self.issues[(repo, number)] = {**issue, "url": api, "comments_url": f"{api}/comments"}
        self.comments[(repo, number)] = [self._comment_json(repo, c["user"], c["body"]) for c in comments]
        if files is not None:
            self.pull_files[(repo, number)] = files

    def _comment_json(self, repo: str, user: dict, body: str) -> dict:
        self._next_comment_id += 1
        comment_id = self._next_comment_id
        return {
            "id": comment_id,
            "body": body,
            "user": {"type": "User", **user},
            "url": f"{self.url}/repos/{repo}/issues/comments/{comment_id}",
            "html_url": f"https://github.test/{repo}/issues#issuecomment-{comment_id}",
        }

    def comments_on(self, repo: str, number: int) -> list[dict]:
        return self.comments.get((repo, number), [])

    def add_repo(self, owner: str, name: str, **kwargs: object) -> FakeRepo:
        repo = FakeRepo(owner, name, **kwargs)
        self.repos[repo.full_name] = repo
        return repo

    # --- HTTP -------------------------------------------------------------------------------

    def hold(self, path_suffix: str) -> None:
        """Make requests whose path ends with ``path_suffix`` wait until :attr:`release` is set
        (GitHub being slow); :attr:`arrived` tells the test one is waiting."""
        self.held_suffix = path_suffix

    @web.middleware
    async def _slow(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if self.held_suffix and request.path.endswith(self.held_suffix):
            self.arrived.set()
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 60)
        return await handler(request)

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._slow])
        app.router.add_get("/user", self._user)
        app.router.add_get("/repos/{owner}/{repo}", self._get_repo)
        app.router.add_post("/repos/{owner}/{repo}/pulls", self._create_pull)
        app.router.add_get("/repos/{owner}/{repo}/pulls", self._list_pulls)
        app.router.add_get("/repos/{owner}/{repo}/installation", self._repo_installation)
        app.router.add_get("/repos/{owner}/{repo}/contents/{path:.+}", self._contents)
        app.router.add_post("/app/installations/{id}/access_tokens", self._access_token)
        app.router.add_get("/repos/{owner}/{repo}/collaborators/{login}/permission", self._permission_of)
        app.router.add_get("/repos/{owner}/{repo}/issues/{number:\\d+}", self._get_issue)
        app.router.add_get("/repos/{owner}/{repo}/issues/{number:\\d+}/comments", self._list_comments)
        app.router.add_post("/repos/{owner}/{repo}/issues/{number:\\d+}/comments", self._add_comment)
        app.router.add_patch("/repos/{owner}/{repo}/issues/comments/{id}", self._edit_comment)
        app.router.add_get("/repos/{owner}/{repo}/pulls/{number:\\d+}", self._get_pull)
        app.router.add_get("/repos/{owner}/{repo}/pulls/{number:\\d+}/files", self._pull_files)
        app.router.add_get("/repos/{owner}/{repo}/pulls/comments/{id}", self._review_comment)
        app.router.add_get("/login/oauth/authorize", self._oauth_authorize)
        app.router.add_post("/login/oauth/access_token", self._oauth_token)
        return app

    def _readable(self, request: web.Request) -> tuple[FakeRepo, Caller]:
        caller = self._record(request)
        repo = self._find(request)
        if self._permission(repo, caller) is None:
            raise _not_found()
        return repo, caller

    async def _permission_of(self, request: web.Request) -> web.Response:
        repo, _caller = self._readable(request)
        login = request.match_info["login"]
        level = repo.collaborators.get(login, "none")
        return web.json_response({"permission": level, "user": {"login": login, "type": "User"}})

    def _issue(self, request: web.Request) -> tuple[str, int]:
        repo, _caller = self._readable(request)
        key = (repo.full_name, int(request.match_info["number"]))
        if key not in self.issues:
            raise _not_found()
        return key

    async def _get_issue(self, request: web.Request) -> web.Response:
        return web.json_response(self.issues[self._issue(request)])

    async def _list_comments(self, request: web.Request) -> web.Response:
        return web.json_response(self.comments[self._issue(request)])

    async def _add_comment(self, request: web.Request) -> web.Response:
        key = self._issue(request)
        caller = self.calls[-1][2]
        body = (await request.json())["body"]
        login = caller.login or "oz-app[bot]"
        comment = self._comment_json(key[0], {"login": login, "type": "Bot" if "[bot]" in login else "User"}, body)
        self.comments[key].append(comment)
        return web.json_response(comment, status=201)

    async def _edit_comment(self, request: web.Request) -> web.Response:
        self._readable(request)
        comment_id = int(request.match_info["id"])
        for comments in self.comments.values():
            for comment in comments:
                if comment["id"] == comment_id:
                    comment["body"] = (await request.json())["body"]
                    self.comment_edits.setdefault(comment_id, []).append(comment["body"])
                    return web.json_response(comment)
        raise _not_found()

    async def _get_pull(self, request: web.Request) -> web.Response:
        key = self._issue(request)
        issue = self.issues[key]
        api = f"{self.url}/repos/{key[0]}/pulls/{key[1]}"
        return web.json_response({**issue, "url": api, "head": {"ref": "feature"}, "base": {"ref": "main"}})

    async def _pull_files(self, request: web.Request) -> web.Response:
        key = self._issue(request)
        return web.json_response([{"filename": f, "status": "modified"} for f in self.pull_files.get(key, [])])

    async def _review_comment(self, request: web.Request) -> web.Response:
        self._readable(request)
        comment = self.review_comments.get(int(request.match_info["id"]))
        if comment is None:
            raise _not_found()
        return web.json_response(comment)

    async def _oauth_authorize(self, request: web.Request) -> web.Response:
        """The person approves at once (as if already signed in) and is sent back with a code."""
        if self.oauth_client is None or request.query.get("client_id") != self.oauth_client[0]:
            return web.Response(status=404, text="unknown client_id")
        if self.browser_login is None:
            raise web.HTTPFound(f"{request.query['redirect_uri']}?error=access_denied&state={request.query['state']}")
        code = secrets.token_hex(10)
        self.codes[code] = self.browser_login
        raise web.HTTPFound(f"{request.query['redirect_uri']}?code={code}&state={request.query['state']}")

    async def _oauth_token(self, request: web.Request) -> web.Response:
        body = await request.json() if request.content_type == "application/json" else dict(await request.post())
        if self.oauth_client is None or (body.get("client_id"), body.get("client_secret")) != self.oauth_client:
            return web.json_response({"error": "incorrect_client_credentials"})
        if body.get("grant_type") == "refresh_token":
            login = self.refresh_tokens.pop(body.get("refresh_token", ""), None)  # rotating: single use
            if login is None:
                return web.json_response({"error": "bad_refresh_token"})
            return web.json_response(self._grant_for(login))
        login = self.codes.pop(body.get("code", ""), None)
        if login is None:
            return web.json_response({"error": "bad_verification_code"})
        return web.json_response(self._grant_for(login))

    def _caller(self, request: web.Request) -> Caller:
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.app_public_key and credential.count(".") == 2:
            try:
                claims = jwt.decode(credential, self.app_public_key, algorithms=["RS256"])
            except jwt.PyJWTError:
                raise web.HTTPUnauthorized(text='{"message": "A JSON web token could not be decoded"}') from None
            if str(claims.get("iss")) != str(self.app_id):
                raise web.HTTPUnauthorized(text='{"message": "wrong issuer"}')
            return Caller(app=True)
        if not credential:
            return Caller()  # anonymous: public repos only
        if credential in self.user_tokens:
            return Caller(login=self.user_tokens[credential])
        if credential in self.installation_tokens:
            return Caller(
                installation_id=self.installation_tokens[credential],
                repositories=self.token_repositories.get(credential),
            )
        raise web.HTTPUnauthorized(text='{"message": "Bad credentials"}', content_type="application/json")

    def _record(self, request: web.Request) -> Caller:
        caller = self._caller(request)
        self.calls.append((request.method, request.path, caller))
        return caller

    def _permission(self, repo: FakeRepo, caller: Caller) -> dict | None:
        if caller.installation_id is not None:
            narrowed_out = caller.repositories is not None and repo.name not in caller.repositories
            return PERMISSIONS["write"] if repo.installation_id == caller.installation_id and not narrowed_out else None
        level = repo.collaborators.get(caller.login or "")
        if level:
            return PERMISSIONS[level]
        return None if repo.private else PERMISSIONS["read"]

    def _repo_json(self, repo: FakeRepo, permissions: dict) -> dict:
        api = f"{self.url}/repos/{repo.full_name}"
        return {
            "id": abs(hash(repo.full_name)) % 10**8,
            "name": repo.name,
            "full_name": repo.full_name,
            "owner": {"login": repo.owner},
            "private": repo.private,
            "default_branch": repo.default_branch,
            "url": api,
            "html_url": f"https://github.test/{repo.full_name}",
            "permissions": permissions,
        }

    def _find(self, request: web.Request) -> FakeRepo:
        repo = self.repos.get(f"{request.match_info['owner']}/{request.match_info['repo']}")
        if repo is None:
            raise _not_found()
        return repo

    async def _user(self, request: web.Request) -> web.Response:
        caller = self._record(request)
        return web.json_response({"login": caller.login, "id": 1, "type": "User"})

    async def _get_repo(self, request: web.Request) -> web.Response:
        caller = self._record(request)
        repo = self._find(request)
        permissions = self._permission(repo, caller)
        if permissions is None:
            raise _not_found()
        return web.json_response(self._repo_json(repo, permissions))

    async def _contents(self, request: web.Request) -> web.Response:
        """``GET /repos/{owner}/{repo}/contents/{path}``: a file (base64), a symlink, or 404."""
        caller = self._record(request)
        repo = self._find(request)
        if self._permission(repo, caller) is None:
            raise _not_found()
        path = request.match_info["path"]
        if path not in repo.files:
            raise _not_found()
        text = repo.files[path]
        url = f"{self.url}/repos/{repo.full_name}/contents/{path}"
        common = {"name": path.rsplit("/", 1)[-1], "path": path, "sha": f"{abs(hash(text)):040x}"[:40], "url": url}
        if text.startswith("symlink:"):
            target = text.removeprefix("symlink:")
            return web.json_response(common | {"type": "symlink", "target": target, "size": len(target)})
        raw = text.encode()
        content = base64.b64encode(raw).decode()
        return web.json_response(common | {"type": "file", "encoding": "base64", "size": len(raw), "content": content})

    async def _list_pulls(self, request: web.Request) -> web.Response:
        """``GET /repos/{owner}/{repo}/pulls?head=owner:branch&state=open``."""
        caller = self._record(request)
        repo = self._find(request)
        if self._permission(repo, caller) is None:
            raise _not_found()
        head = request.query.get("head", "")
        state = request.query.get("state", "open")
        found = [
            p
            for p in self.pulls
            if p["repo"] == repo.full_name
            and (not head or f"{repo.owner}:{p['head']['ref']}" == head)
            and (state == "all" or p["state"] == state)
        ]
        return web.json_response(found)

    async def _create_pull(self, request: web.Request) -> web.Response:
        caller = self._record(request)
        repo = self._find(request)
        permissions = self._permission(repo, caller)
        if permissions is None:
            raise _not_found()
        if not permissions["push"]:
            return web.json_response({"message": "Resource not accessible by integration"}, status=403)
        body = await request.json()
        if any(
            p["repo"] == repo.full_name and p["head"]["ref"] == body["head"] and p["state"] == "open"
            for p in self.pulls
        ):
            message = f"A pull request already exists for {repo.owner}:{body['head']}."
            errors = [{"resource": "PullRequest", "code": "custom", "message": message}]
            return web.json_response({"message": "Validation Failed", "errors": errors}, status=422)
        number = len(self.pulls) + 1
        pull = {
            "number": number,
            "state": "open",
            "title": body["title"],
            "body": body.get("body"),
            "head": {"ref": body["head"]},
            "base": {"ref": body["base"]},
            "url": f"{self.url}/repos/{repo.full_name}/pulls/{number}",
            "html_url": f"https://github.test/{repo.full_name}/pull/{number}",
            "user": {"login": caller.login or "oz-app[bot]"},
            "repo": repo.full_name,
        }
        self.pulls.append(pull)
        return web.json_response(pull, status=201)

    async def _repo_installation(self, request: web.Request) -> web.Response:
        caller = self._record(request)
        if not caller.app:
            raise web.HTTPUnauthorized(text='{"message": "an app JWT is required"}')
        repo = self._find(request)
        if repo.installation_id is None:
            raise _not_found()
        return web.json_response(
            {
                "id": repo.installation_id,
                "app_id": int(self.app_id or 0),
                "account": {"login": repo.owner},
                "target_type": "Organization",
            }
        )

    async def _access_token(self, request: web.Request) -> web.Response:
        caller = self._record(request)
        if not caller.app:
            raise web.HTTPUnauthorized(text='{"message": "an app JWT is required"}')
        body = await request.json() if request.can_read_body else {}
        installation_id = int(request.match_info["id"])
        names = body.get("repositories")
        if names is not None:
            covered = {r.name for r in self.repos.values() if r.installation_id == installation_id}
            if not set(names) <= covered:  # GitHub: 422 when a named repo is not in the installation
                raise web.HTTPUnprocessableEntity(
                    text='{"message": "There is at least one repository that does not exist or is not accessible"}',
                    content_type="application/json",
                )
        token = "ghs_" + secrets.token_hex(16)
        self.installation_tokens[token] = installation_id
        self.token_repositories[token] = None if names is None else frozenset(names)
        expires = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return web.json_response({"token": token, "expires_at": expires}, status=201)


def _not_found() -> web.HTTPNotFound:
    return web.HTTPNotFound(text='{"message": "Not Found"}', content_type="application/json")
