"""Scripted model APIs on 127.0.0.1 for the real agent CLIs: Anthropic Messages (Claude Code),
OpenAI Responses (Codex) and Gemini ``streamGenerateContent`` (Gemini CLI), each answering in
its real wire format, streamed as server-sent events.

Each fake plays one :class:`Script` — read a file, edit it, run a shell command, answer —
advancing one step per tool result the CLI sends back (so retries and parallel side requests
are harmless), and checks on the way that the CLI offered the tools the step needs and sent
back what the previous step should have produced; a surprise is answered with a 400 whose
message names it (the CLI shows it) and kept in ``problems``.  Requests that are not the
agent's main loop (a title, a next-speaker check) get a short plain answer.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.live_server import FakeService, LiveServer

READ, EDIT, SHELL, ANSWER, MCP = range(5)
SEARCH_ID = "toolu_search"


@dataclass(frozen=True)
class Script:
    path: str
    """Absolute path of the file to read and edit, as the agent sees it."""
    old: str
    new: str
    command: str = "ls"
    expect: str = "README.md"
    """Must appear in the command's output."""
    answer: str = "Updated README.md."
    usage: tuple[int, int] = (1200, 80)
    """Input and output tokens each answer reports."""
    followup: str | None = None
    """A follow-up the test will send: once the conversation holds it, the answer says so."""
    mcp_tool: str | None = None
    """Instead of read, edit, run: one call of the MCP tool of this name (whatever name the CLI
    offers it under: ``mcp__server__tool``, ``server__tool``, …) with ``{"text": mcp_text}``,
    then the answer — once the tool's result holds ``expect``."""
    mcp_text: str = "ping"


class ScriptError(Exception):
    pass


@dataclass
class Failure:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    times: int | None = None
    """How many requests fail; ``None`` for all of them."""


def sse(event: str | None, data: dict[str, Any]) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


class FakeModelAPI(FakeService):
    """What the three fakes share: the script, the request log, failures, the server."""

    api_key = "test-model-key"

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.failure: Failure | None = None
        self.hold_step: int | None = None
        """The step whose answer waits for :attr:`release` (so a test can act mid-turn)."""
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.server = LiveServer(self._app())

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    def fail(self, status: int, body: dict[str, Any], times: int | None = None, **headers: str) -> None:
        self.failure = Failure(status, body, headers, times)

    @property
    def main_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if self.is_main(r["body"])]

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw.strip() else {}
        self.requests.append(
            {
                "path": request.path,
                "query": dict(request.query),
                "headers": dict(request.headers),
                "body": body,
                "at": time.time(),
            }
        )
        if not self.authorized(request):
            return self.unauthorized()
        if self.failure is not None and self.failure.times != 0:
            if self.failure.times is not None:
                self.failure.times -= 1
            return web.json_response(self.failure.body, status=self.failure.status, headers=self.failure.headers)
        try:
            return await self.handle(request, body)
        except ScriptError as problem:
            self.problems.append(str(problem))
            return self.bad_request(str(problem))

    def answer_text(self, body: dict[str, Any]) -> str:
        """The final answer; it acknowledges the follow-up once the conversation holds it."""
        script = self.script
        if script.followup and script.followup in json.dumps(body):
            return f"{script.answer} Follow-up handled: {script.followup}"
        return script.answer

    async def held(self, step: int) -> None:
        """Wait here (without blocking the server) while the test holds this step."""
        if step == self.hold_step:
            self.arrived.set()
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 120)

    def step_of(self, results: list[str]) -> int:
        """Which step comes next, given the tool results so far; checks the last one."""
        step = len(results)
        script = self.script
        if script.mcp_tool is not None:  # one MCP call, then the answer
            if step and script.expect not in results[-1]:
                raise ScriptError(f"the MCP tool did not return {script.expect!r}: {results[-1][:300]!r}")
            return ANSWER if step else MCP
        if step > ANSWER:
            raise ScriptError(f"the script is over, yet {step} tool results came back")
        if step == EDIT and script.old not in results[-1]:
            raise ScriptError(f"the read of {script.path} did not return {script.old!r}: {results[-1][:300]!r}")
        if step == ANSWER and script.expect not in results[-1]:
            raise ScriptError(f"{script.command!r} did not print {script.expect!r}: {results[-1][:300]!r}")
        return step

    # --- per API ---------------------------------------------------------------------------

    def authorized(self, request: web.Request) -> bool:
        raise NotImplementedError

    def unauthorized(self) -> web.Response:
        raise NotImplementedError

    def bad_request(self, message: str) -> web.Response:
        raise NotImplementedError

    def is_main(self, body: dict[str, Any]) -> bool:
        raise NotImplementedError

    def mcp_name(self, offered: set[str]) -> str:
        """The name the CLI offers the script's MCP tool under."""
        tool = self.script.mcp_tool or ""
        found = sorted(n for n in offered if n == tool or n.endswith(f"_{tool}") or n.endswith(f".{tool}"))
        if not found:
            raise ScriptError(f"the CLI did not offer the MCP tool {tool} (it offered {sorted(offered)})")
        return found[0]

    async def handle(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        raise NotImplementedError

    async def stream(self, request: web.Request, chunks: Iterator[bytes]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        for chunk in chunks:
            await response.write(chunk)
        await response.write_eof()
        return response


def _text_of(content: Any) -> str:
    """The text of a tool result, whichever shape the CLI sent it in."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_text_of(c) for c in content)
    if isinstance(content, dict):
        for key in ("text", "output", "content", "response", "result"):
            if key in content:
                return _text_of(content[key])
        return json.dumps(content)
    return str(content)


class FakeAnthropic(FakeModelAPI):
    """``POST /v1/messages`` as Claude Code calls it (``ANTHROPIC_BASE_URL``)."""

    TOOLS = {READ: "Read", EDIT: "Edit", SHELL: "Bash"}

    def authorized(self, request: web.Request) -> bool:
        return request.headers.get("x-api-key") == self.api_key

    def unauthorized(self) -> web.Response:
        return web.json_response(
            {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}, status=401
        )

    def bad_request(self, message: str) -> web.Response:
        return web.json_response(
            {"type": "error", "error": {"type": "invalid_request_error", "message": message}}, status=400
        )

    def is_main(self, body: dict[str, Any]) -> bool:
        return any(t.get("name") == "Bash" for t in body.get("tools", []))

    async def handle(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        if request.path.endswith("/count_tokens"):
            return web.json_response({"input_tokens": self.script.usage[0]})
        if not request.path.endswith("/v1/messages"):
            return web.json_response(
                {"type": "error", "error": {"type": "not_found_error", "message": request.path}}, status=404
            )
        if not self.is_main(body):
            blocks = [{"type": "text", "text": "Scripted session"}]
            return await self._answer(request, body, blocks, "end_turn")
        blocks = [
            block
            for message in body.get("messages", [])
            if message.get("role") == "user" and isinstance(message.get("content"), list)
            for block in message["content"]
            if block.get("type") == "tool_result"
        ]
        searched = any(str(b.get("tool_use_id", "")).startswith(SEARCH_ID) for b in blocks)
        results = [_text_of(b.get("content")) for b in blocks if not str(b.get("tool_use_id")).startswith(SEARCH_ID)]
        step = self.step_of(results)
        await self.held(step)
        if step == ANSWER:
            return await self._answer(request, body, [{"type": "text", "text": self.answer_text(body)}], "end_turn")
        script = self.script
        if step == MCP:
            return await self._answer(request, body, self._mcp_call(body, searched), "tool_use")
        name = self.TOOLS[step]
        if not any(t.get("name") == name for t in body.get("tools", [])):
            raise ScriptError(f"Claude Code did not offer the {name} tool")
        arguments = {
            READ: {"file_path": script.path},
            EDIT: {"file_path": script.path, "old_string": script.old, "new_string": script.new},
            SHELL: {"command": script.command, "description": "List the files"},
        }[step]
        blocks = [
            {"type": "text", "text": f"Step {step + 1}: {name}."},
            {"type": "tool_use", "id": f"toolu_{step:02d}{len(self.requests):04d}", "name": name, "input": arguments},
        ]
        return await self._answer(request, body, blocks, "tool_use")

    def _mcp_call(self, body: dict[str, Any], searched: bool) -> list[dict[str, Any]]:
        """Claude Code defers MCP tools: only their names are listed, and ``ToolSearch`` loads one
        before it can be called — as a model would, this asks for it first."""
        loaded = {t.get("name") for t in body.get("tools", []) if not t.get("defer_loading")}
        deferred = set(re.findall(r"^(mcp__[A-Za-z0-9_-]+)$", json.dumps(body).replace("\\n", "\n"), re.MULTILINE))
        name = self.mcp_name(loaded | deferred)
        if name not in loaded and not searched:
            search = {"type": "tool_use", "id": f"{SEARCH_ID}{len(self.requests):04d}", "name": "ToolSearch"}
            return [search | {"input": {"query": f"select:{name}"}}]
        call = {"type": "tool_use", "id": f"toolu_mcp{len(self.requests):04d}", "name": name}
        return [{"type": "text", "text": "Asking the MCP server."}, call | {"input": {"text": self.script.mcp_text}}]

    async def _answer(
        self, request: web.Request, body: dict[str, Any], blocks: list[dict[str, Any]], stop: str
    ) -> web.StreamResponse:
        model = body.get("model", "claude-scripted")
        usage_in, usage_out = self.script.usage
        message = {
            "id": f"msg_{len(self.requests):04d}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "stop_reason": stop,
            "stop_sequence": None,
        }
        if not body.get("stream"):
            usage = {"input_tokens": usage_in, "output_tokens": usage_out}
            return web.json_response({**message, "content": blocks, "usage": usage})
        return await self.stream(request, self._events(message, blocks, stop, usage_in, usage_out))

    @staticmethod
    def _events(
        message: dict[str, Any], blocks: list[dict[str, Any]], stop: str, usage_in: int, usage_out: int
    ) -> Iterator[bytes]:
        start = {**message, "content": [], "stop_reason": None, "usage": {"input_tokens": usage_in, "output_tokens": 1}}
        yield sse("message_start", {"type": "message_start", "message": start})
        for index, block in enumerate(blocks):
            if block["type"] == "text":
                yield sse(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
                )
                delta = {"type": "text_delta", "text": block["text"]}
            else:
                opened = {**block, "input": {}}
                yield sse(
                    "content_block_start", {"type": "content_block_start", "index": index, "content_block": opened}
                )
                delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            yield sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
            yield sse("content_block_stop", {"type": "content_block_stop", "index": index})
        yield sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": usage_out},
            },
        )
        yield sse("message_stop", {"type": "message_stop"})


def _patch(path: str, old: str, new: str) -> str:
    """An ``apply_patch`` envelope replacing the lines of ``old`` by those of ``new``."""
    lines = [f"-{line}" for line in old.split("\n")] + [f"+{line}" for line in new.split("\n")]
    return "\n".join(["*** Begin Patch", f"*** Update File: {path}", "@@", *lines, "*** End Patch"]) + "\n"


class FakeOpenAI(FakeModelAPI):
    """``POST /v1/responses`` as the Codex CLI calls it (its provider's ``base_url``).

    Codex offers its tools through one ``exec`` tool that runs JavaScript calling them
    (``tools.exec_command``, ``tools.apply_patch``); each step is such a script.
    """

    def authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.api_key}"

    def unauthorized(self) -> web.Response:
        error = {
            "message": "Incorrect API key provided.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
        return web.json_response({"error": error}, status=401)

    def bad_request(self, message: str) -> web.Response:
        error = {"message": message, "type": "invalid_request_error", "param": None, "code": None}
        return web.json_response({"error": error}, status=400)

    def is_main(self, body: dict[str, Any]) -> bool:
        return bool(self._tool_names(body))

    @staticmethod
    def _tool_names(body: dict[str, Any]) -> set[str]:
        tools = list(body.get("tools") or [])
        for item in body.get("input") or []:
            if isinstance(item, dict) and item.get("type") == "additional_tools":
                tools += item.get("tools", [])
        names: set[str] = set()
        while tools:
            tool = tools.pop()
            if tool.get("type") == "namespace":
                tools += tool.get("tools", [])
            elif tool.get("name"):
                names.add(tool["name"])
                names.update(n for n in ("exec_command", "apply_patch") if f"`{n}`" in tool.get("description", ""))
        return names

    async def handle(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        if request.method == "GET" and request.path.endswith("/models"):
            return web.json_response({"object": "list", "data": [{"id": "gpt-scripted", "object": "model"}]})
        if not request.path.endswith("/responses"):
            return web.json_response({"error": {"message": f"no route {request.path}"}}, status=404)
        if not self.is_main(body):
            return await self._respond(request, body, [self._message("Scripted session")])
        results = [
            _text_of(item.get("output"))
            for item in body.get("input") or []
            if isinstance(item, dict) and item.get("type") in ("custom_tool_call_output", "function_call_output")
        ]
        step = self.step_of(results)
        await self.held(step)
        if step == ANSWER:
            return await self._respond(request, body, [self._message(self.answer_text(body))])
        names = self._tool_names(body)
        script = self.script
        if step == MCP:
            return await self._respond(request, body, [self._mcp_call(body, names)])
        commands = {
            READ: f"cat {script.path}",
            EDIT: f"apply_patch <<'PATCH'\n{_patch(script.path, script.old, script.new)}PATCH",
            SHELL: script.command,
        }
        call_id = f"call_{step}_{len(self.requests)}"
        if "exec" in names:  # code mode: one `exec` tool running JavaScript that calls the others
            needed = {READ: "exec_command", EDIT: "apply_patch", SHELL: "exec_command"}[step]
            if needed not in names:
                raise ScriptError(f"Codex's exec tool does not offer {needed} (it offered {sorted(names)})")
            source = {
                READ: f"const r = await tools.exec_command({{cmd: {json.dumps(commands[READ])}}});\ntext(r.output);",
                EDIT: f"const r = await tools.apply_patch({json.dumps(_patch(script.path, script.old, script.new))});\n"
                "text(JSON.stringify(r));",
                SHELL: f"const r = await tools.exec_command({{cmd: {json.dumps(commands[SHELL])}}});\ntext(r.output);",
            }[step]
            call = {
                "type": "custom_tool_call",
                "id": f"ctc_{len(self.requests)}",
                "call_id": call_id,
                "name": "exec",
                "input": source,
                "status": "completed",
            }
        elif "exec_command" in names:  # plain function tools; an edit is `apply_patch`, which Codex intercepts
            call = {
                "type": "function_call",
                "id": f"fc_{len(self.requests)}",
                "call_id": call_id,
                "name": "exec_command",
                "arguments": json.dumps({"cmd": commands[step]}),
                "status": "completed",
            }
        else:
            raise ScriptError(f"Codex offered neither exec nor exec_command (it offered {sorted(names)})")
        return await self._respond(request, body, [call])

    def _mcp_call(self, body: dict[str, Any], names: set[str]) -> dict[str, Any]:
        """The MCP tool called as Codex offers it: a function in the server's namespace."""
        name, arguments = self.mcp_name(names), {"text": self.script.mcp_text}
        call_id = f"call_mcp_{len(self.requests)}"
        call = {
            "type": "function_call",
            "id": f"fc_{len(self.requests)}",
            "call_id": call_id,
            "name": name,
            "arguments": json.dumps(arguments),
            "status": "completed",
        }
        namespace = self._namespace_of(body, name)
        return call | ({"namespace": namespace} if namespace else {})

    @staticmethod
    def _namespace_of(body: dict[str, Any], name: str) -> str | None:
        """The namespace a tool is offered in (Codex groups a server's MCP tools as ``mcp__<server>``)."""
        for tool in body.get("tools") or []:
            if tool.get("type") == "namespace" and any(t.get("name") == name for t in tool.get("tools", [])):
                return tool["name"]
        return None

    @staticmethod
    def _message(text: str) -> dict[str, Any]:
        return {
            "type": "message",
            "id": "msg_scripted",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }

    async def _respond(
        self, request: web.Request, body: dict[str, Any], items: list[dict[str, Any]]
    ) -> web.StreamResponse:
        usage_in, usage_out = self.script.usage
        response = {
            "id": f"resp_{len(self.requests)}",
            "object": "response",
            "created_at": 1_800_000_000,
            "model": body.get("model", "gpt-scripted"),
            "status": "in_progress",
            "output": [],
        }
        usage = {
            "input_tokens": usage_in,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": usage_out,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage_in + usage_out,
        }

        def events() -> Iterator[bytes]:
            yield sse("response.created", {"type": "response.created", "response": response})
            for index, item in enumerate(items):
                yield sse(
                    "response.output_item.added",
                    {
                        "type": "response.output_item.added",
                        "output_index": index,
                        "item": {**item, "status": "in_progress"},
                    },
                )
                if item["type"] == "message":
                    text = item["content"][0]["text"]
                    yield sse(
                        "response.output_text.delta",
                        {
                            "type": "response.output_text.delta",
                            "item_id": item["id"],
                            "output_index": index,
                            "content_index": 0,
                            "delta": text,
                        },
                    )
                yield sse(
                    "response.output_item.done",
                    {"type": "response.output_item.done", "output_index": index, "item": item},
                )
            done = {**response, "status": "completed", "output": items, "usage": usage}
            yield sse("response.completed", {"type": "response.completed", "response": done})

        return await self.stream(request, events())


def _example(schema: dict[str, Any]) -> Any:
    """A value that satisfies a (Gemini-flavoured) JSON schema: what a side request such as
    the model router or the next-speaker check asks for."""
    kind = str(schema.get("type", "object")).lower()
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object":
        return {name: _example(sub) for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        return []
    return {"string": "scripted", "integer": 1, "number": 1, "boolean": False}.get(kind)


class FakeGemini(FakeModelAPI):
    """``models/{model}:streamGenerateContent`` and ``:generateContent`` as the Gemini CLI
    calls them (``GOOGLE_GEMINI_BASE_URL``)."""

    TOOLS = {READ: "read_file", EDIT: "replace", SHELL: "run_shell_command"}

    def authorized(self, request: web.Request) -> bool:
        return request.headers.get("x-goog-api-key") == self.api_key

    def _error(self, status: int, code: str, message: str) -> web.Response:
        return web.json_response({"error": {"code": status, "message": message, "status": code}}, status=status)

    def unauthorized(self) -> web.Response:
        return self._error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.")

    def bad_request(self, message: str) -> web.Response:
        return self._error(400, "INVALID_ARGUMENT", message)

    def is_main(self, body: dict[str, Any]) -> bool:
        return "run_shell_command" in self._tool_names(body)

    @staticmethod
    def _tool_names(body: dict[str, Any]) -> set[str]:
        return {f.get("name") for t in body.get("tools") or [] for f in t.get("functionDeclarations", [])}

    async def handle(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        streaming = request.path.endswith(":streamGenerateContent")
        if request.path.endswith(":countTokens"):
            return web.json_response({"totalTokens": self.script.usage[0]})
        if not (streaming or request.path.endswith(":generateContent")):
            return self._error(404, "NOT_FOUND", f"no route {request.path}")
        config = body.get("generationConfig") or {}
        schema = config.get("responseJsonSchema") or config.get("responseSchema")
        if schema is not None:
            return await self._respond(request, streaming, [{"text": json.dumps(_example(schema))}])
        if not self.is_main(body):
            return await self._respond(request, streaming, [{"text": "Scripted session"}])
        answered = {  # by call id: a resumed Gemini CLI session repeats each response
            part["functionResponse"].get("id") or json.dumps(part["functionResponse"]): part["functionResponse"]
            for content in body.get("contents", [])
            for part in content.get("parts", [])
            if "functionResponse" in part
        }
        results = [_text_of(response.get("response")) for response in answered.values()]
        step = self.step_of(results)
        await self.held(step)
        if step == ANSWER:
            return await self._respond(request, streaming, [{"text": self.answer_text(body)}])
        script = self.script
        if step == MCP:
            name = self.mcp_name(self._tool_names(body))
            call = {"functionCall": {"name": name, "args": {"text": script.mcp_text}}}
            return await self._respond(request, streaming, [{"text": "Asking the MCP server."}, call])
        name = self.TOOLS[step]
        if name not in self._tool_names(body):
            raise ScriptError(f"Gemini CLI did not offer the {name} tool")
        args = {
            READ: {"file_path": script.path},
            EDIT: {
                "file_path": script.path,
                "instruction": "Apply the scripted edit.",
                "old_string": script.old,
                "new_string": script.new,
            },
            SHELL: {"command": script.command, "description": "List the files"},
        }[step]
        return await self._respond(
            request, streaming, [{"text": f"Step {step + 1}: {name}."}, {"functionCall": {"name": name, "args": args}}]
        )

    async def _respond(self, request: web.Request, streaming: bool, parts: list[dict[str, Any]]) -> web.StreamResponse:
        usage_in, usage_out = self.script.usage
        usage = {
            "promptTokenCount": usage_in,
            "candidatesTokenCount": usage_out,
            "totalTokenCount": usage_in + usage_out,
        }
        model = request.match_info.get("tail", "").split("/")[-1].split(":")[0]

        def chunk(part_list: list[dict[str, Any]], final: bool) -> dict[str, Any]:
            candidate: dict[str, Any] = {"content": {"role": "model", "parts": part_list}, "index": 0}
            if final:
                candidate["finishReason"] = "STOP"
            answer: dict[str, Any] = {"candidates": [candidate], "modelVersion": model or "gemini-scripted"}
            if final:
                answer["usageMetadata"] = usage
            return answer

        if not streaming:
            return web.json_response(chunk(parts, True))
        return await self.stream(request, (sse(None, chunk([p], i == len(parts) - 1)) for i, p in enumerate(parts)))
