"""A small Slack on 127.0.0.1: the Web API methods the app calls, answered in Slack's wire
format (from the recorded responses in ``tests/slack/fixtures/api``), and a Socket Mode
WebSocket that pushes event envelopes and records the app's acknowledgements.

Every call is recorded with its parameters and bearer token, so tests assert what a person
in Slack would have seen.  ``rate_limit(method, times)`` answers the next calls with HTTP
429 and ``Retry-After``, as Slack does.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from tests.live_server import FakeService, LiveServer

FIXTURES = Path(__file__).resolve().parent.parent / "slack" / "fixtures"
TEAM = "T061EG9R6"
BOT_USER = "U0LAN0Z89"
BOT_ID = "B0LAN0Z8A"


def api_fixture(name: str) -> dict:
    return json.loads((FIXTURES / "api" / f"{name}.json").read_text())


def event_fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    token: str | None


@dataclass
class Posted:
    channel: str
    ts: str
    text: str
    blocks: list = field(default_factory=list)
    thread_ts: str | None = None
    edits: list[dict] = field(default_factory=list)

    @property
    def everything(self) -> str:
        """All text the message showed over its life (its versions, blocks included)."""
        return json.dumps([self.text, self.blocks, self.edits])


class FakeSlack(FakeService):
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.messages: dict[str, Posted] = {}
        self.users: dict[str, dict] = {}
        self.threads: dict[str, list[dict]] = {}
        self.paginate = False
        self.private_channels: set[str] = set()
        self.acks: list[str] = []
        self.oauth_grants: dict[str, dict] = {}
        self.files: dict[str, bytes] = {}
        self.file_token: str | None = None
        """The bot token a download must carry (Slack's ``files:read``); others get the sign-in page."""
        self.downloads: list[tuple[str, str | None]] = []
        self._limits: dict[str, int] = {}
        self._ts = itertools.count(1)
        self._sockets: list[web.WebSocketResponse] = []
        self._lock = threading.Lock()
        self.server = LiveServer(self._app())
        self.add_user("U061F7AUR", "Ada Lovelace", "ada@acme.dev")
        self.add_user("U0G9QF9C6", "Grace Hopper", "grace@acme.dev")

    # --- test-side controls -------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"{self.server.url}/api/"

    def add_user(self, uid: str, real_name: str, email: str) -> None:
        user = api_fixture("users.info")["user"]
        user = {**user, "id": uid, "name": real_name.split()[0].lower(), "real_name": real_name}
        user["profile"] = {**user["profile"], "real_name": real_name, "display_name": user["name"], "email": email}
        self.users[uid] = user

    def rate_limit(self, method: str, times: int = 1) -> None:
        self._limits[method] = times

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def in_thread(self, channel: str, thread_ts: str) -> list[Posted]:
        return [m for m in self.messages.values() if m.channel == channel and m.thread_ts == thread_ts]

    def push_envelope(self, envelope: dict) -> None:
        """Send an event envelope down every open Socket Mode connection."""

        async def send() -> None:
            for socket in list(self._sockets):
                await socket.send_str(json.dumps(envelope))

        asyncio.run_coroutine_threadsafe(send(), self.server._loop).result(5)

    @property
    def socket_connections(self) -> int:
        return len(self._sockets)

    # --- the server -----------------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/socket", self._socket)
        app.router.add_get("/files-pri/{team_file}/download/{name}", self._file)
        return app

    def share_file(self, file_id: str, name: str, mimetype: str, data: bytes) -> dict:
        """A file object as ``conversations.replies`` lists it, downloadable from this fake."""
        self.files[file_id] = data
        return {
            "id": file_id,
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "size": len(data),
            "url_private": f"{self.server.url}/files-pri/T0001-{file_id}/{name}",
            "url_private_download": f"{self.server.url}/files-pri/T0001-{file_id}/download/{name}",
            "permalink": f"https://acme.slack.com/files/U061F7AUR/{file_id}/{name}",
        }

    async def _file(self, request: web.Request) -> web.Response:
        """A private file: its bytes with the right bot token, else Slack's sign-in page (HTTP 200)."""
        file_id = request.match_info["team_file"].split("-", 1)[-1]
        auth = request.headers.get("Authorization")
        self.downloads.append((file_id, auth))
        if file_id not in self.files:
            raise web.HTTPNotFound()
        if auth != f"Bearer {self.file_token}":
            return web.Response(text="<html><body>Sign in to Slack</body></html>", content_type="text/html")
        return web.Response(body=self.files[file_id], content_type="application/octet-stream")

    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            params.update(await request.json())
        else:
            params.update(dict(await request.post()))
        for key in ("blocks", "attachments"):
            if isinstance(params.get(key), str):
                params[key] = json.loads(params[key])
        return params

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await self._params(request)
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") or params.get("token")
        with self._lock:
            self.calls.append(Call(method, params, token))
            limited = self._limits.get(method, 0)
            if limited:
                self._limits[method] = limited - 1
        if limited:
            return web.json_response(api_fixture("error.ratelimited"), status=429, headers={"Retry-After": "1"})
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        return web.json_response(handler(params))

    def _next_ts(self) -> str:
        return f"1732330{next(self._ts):03d}.000100"

    def _auth_test(self, params: dict) -> dict:
        return api_fixture("auth.test")

    def _reactions_add(self, params: dict) -> dict:
        return api_fixture("reactions.add")

    def _assistant_threads_setStatus(self, params: dict) -> dict:
        return {"ok": True}

    def _chat_postMessage(self, params: dict) -> dict:
        body = api_fixture("chat.postMessage")
        ts = self._next_ts()
        text, blocks = params.get("text", ""), params.get("blocks") or []
        posted = Posted(params["channel"], ts, text, blocks, params.get("thread_ts"))
        with self._lock:
            self.messages[ts] = posted
        message = {**body["message"], "text": posted.text, "ts": ts, "thread_ts": posted.thread_ts}
        return {**body, "channel": posted.channel, "ts": ts, "message": message}

    def _chat_update(self, params: dict) -> dict:
        posted = self.messages.get(params["ts"])
        if posted is None:
            return {"ok": False, "error": "message_not_found"}
        with self._lock:
            posted.edits.append({"text": params.get("text"), "blocks": params.get("blocks")})
            posted.text, posted.blocks = params.get("text", ""), params.get("blocks") or []
        return {**api_fixture("chat.update"), "channel": posted.channel, "ts": posted.ts, "text": posted.text}

    def _chat_postEphemeral(self, params: dict) -> dict:
        return api_fixture("chat.postEphemeral")

    def _chat_getPermalink(self, params: dict) -> dict:
        channel, ts = params["channel"], params["message_ts"]
        link = f"https://acme.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        return {**api_fixture("chat.getPermalink"), "channel": channel, "permalink": link}

    def _users_info(self, params: dict) -> dict:
        user = self.users.get(params["user"])
        return {"ok": True, "user": user} if user else {"ok": False, "error": "user_not_found"}

    def _conversations_info(self, params: dict) -> dict:
        """Slack's answer for a channel: public unless the test made it private."""
        channel = params["channel"]
        private = channel in self.private_channels
        return {
            "ok": True,
            "channel": {
                "id": channel,
                "name": f"chan-{channel.lower()}",
                "is_channel": not private,
                "is_group": private,
                "is_im": channel.startswith("D"),
                "is_private": private,
            },
        }

    def _conversations_replies(self, params: dict) -> dict:
        if self.paginate:
            page = "conversations.replies.page2" if params.get("cursor") else "conversations.replies.page1"
            return api_fixture(page)
        messages = self.threads.get(f"{params['channel']}:{params['ts']}")
        if messages is None:
            return api_fixture("conversations.replies")
        return {"ok": True, "messages": messages, "has_more": False, "response_metadata": {"next_cursor": ""}}

    def _apps_connections_open(self, params: dict) -> dict:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.server.port}/socket"}

    def _oauth_v2_access(self, params: dict) -> dict:
        grant = self.oauth_grants.get(params.get("code", ""))
        return grant or {"ok": False, "error": "invalid_code"}

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._sockets.append(socket)
        await socket.send_str(json.dumps({"type": "hello", "num_connections": 1, "debug_info": {"host": "fake"}}))
        try:
            async for message in socket:
                if message.type == WSMsgType.TEXT:
                    data = json.loads(message.data)
                    if "envelope_id" in data:
                        self.acks.append(data["envelope_id"])
        finally:
            self._sockets.remove(socket)
        return socket
