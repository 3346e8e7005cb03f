"""Claude Code: ``claude -p --input-format stream-json --output-format stream-json --verbose``.

The prompt, and every follow-up while the run works, is a ``user`` message on standard input.
A follow-up that arrives mid-turn is folded into that turn ("The user sent a new message while
you were working"); one that arrives between turns is queued for a turn of its own.  Each turn
ends with a ``result`` line saying how many messages are still queued (``queued_turn_count``);
when none are, the runner closes standard input and the CLI exits.  ``bypassPermissions`` is
refused as root unless ``IS_SANDBOX=1`` says the process is sandboxed (it is: the container is).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from core.events import EventKind, RunEvent
from core.models import ModelUsage
from runner.harness.base import Driver, Invocation, JsonLinesParser, StreamParser

FILE_TOOLS = {"Edit", "Write", "MultiEdit", "NotebookEdit"}
MCP_FILE = "claude-mcp.json"
QUIET = {
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
}


class ClaudeParser(JsonLinesParser):
    def on_object(self, obj: dict[str, Any]) -> list[RunEvent]:
        kind = obj.get("type")
        if kind == "system" and obj.get("subtype") == "init":
            self.session_id = obj.get("session_id") or self.session_id
        elif kind == "assistant":
            return [e for item in obj.get("message", {}).get("content", []) if (e := self._content(item))]
        elif kind == "result":
            return self._result(obj)
        return []

    def _result(self, obj: dict[str, Any]) -> list[RunEvent]:
        self.turns += 1
        self.queued_input = int(obj.get("queued_turn_count") or 0)
        self.session_id = obj.get("session_id") or self.session_id
        self.usage = [_usage(model, numbers) for model, numbers in (obj.get("modelUsage") or {}).items()]
        if obj.get("is_error") or obj.get("subtype") != "success":
            self.failure = obj.get("result") or f"Claude Code stopped: {obj.get('subtype', 'error')}"
            self.failure_status = obj.get("api_error_status")
            return [RunEvent(kind=EventKind.ERROR, text=self.failure)]
        self.failure = None  # a later turn that succeeds supersedes an earlier failure
        self.summary = obj.get("result") or self.summary
        return []

    def _content(self, item: dict[str, Any]) -> RunEvent | None:
        match item.get("type"):
            case "text" if item.get("text", "").strip():
                self.summary = item["text"]
                return RunEvent(kind=EventKind.MESSAGE, text=item["text"])
            case "thinking" if item.get("thinking", "").strip():
                return RunEvent(kind=EventKind.THOUGHT, text=item["thinking"])
            case "tool_use":
                name, args = item.get("name", "tool"), item.get("input") or {}
                if name == "Bash":
                    return RunEvent(kind=EventKind.COMMAND, command=args.get("command", ""), tool=name)
                if name in FILE_TOOLS:
                    return RunEvent(
                        kind=EventKind.FILE_EDIT, path=args.get("file_path") or args.get("notebook_path"), tool=name
                    )
                return RunEvent(kind=EventKind.TOOL_CALL, tool=name, data=args)
        return None


def _usage(model: str, numbers: dict[str, Any]) -> ModelUsage:
    return ModelUsage(
        model=model,
        input_tokens=int(numbers.get("inputTokens") or 0),
        output_tokens=int(numbers.get("outputTokens") or 0),
        cached_input_tokens=int(numbers.get("cacheReadInputTokens") or 0),
        cost_usd=numbers.get("costUSD"),
    )


def _mcp_server(server: Mapping[str, Any]) -> dict[str, Any]:
    """One server in Claude Code's ``--mcp-config`` shape (``type`` stdio or http)."""
    if server.get("url"):
        return {"type": "http", "url": server["url"], "headers": dict(server.get("headers") or {})}
    return {
        "type": "stdio",
        "command": server["command"],
        "args": list(server.get("args") or []),
        "env": dict(server.get("env") or {}),
    }


def user_message(content: str | list[dict[str, Any]]) -> bytes:
    return (json.dumps({"type": "user", "message": {"role": "user", "content": content}}) + "\n").encode()


class ClaudeDriver(Driver):
    name = "claude"
    program = "claude"
    install_hint = "npm install -g @anthropic-ai/claude-code (see manifests/images/agent)"
    key_secrets = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")
    model_hosts = ("api.anthropic.com",)
    base_url_variables = ("ANTHROPIC_BASE_URL",)
    live_input = True

    def command(self, invocation: Invocation) -> list[str]:
        argv = [
            "claude",
            "-p",
            "--input-format",
            "stream-json",
            "--output-format",
            "stream-json",
            "--verbose",
            "--permission-mode",
            "bypassPermissions",
        ]
        if invocation.model_id:
            argv += ["--model", invocation.model_id]
        if invocation.mcp_servers:  # only the run's servers, never a config the workspace carries
            argv += ["--mcp-config", f"{invocation.config_dir}/{MCP_FILE}", "--strict-mcp-config"]
        if invocation.resume:
            argv += ["--resume", invocation.resume]
        return argv

    def files(self, invocation: Invocation) -> dict[str, str]:
        if not invocation.mcp_servers:
            return {}
        servers = {name: _mcp_server(server) for name, server in invocation.mcp_servers.items()}
        return {MCP_FILE: json.dumps({"mcpServers": servers}, indent=2)}

    def environment(self, invocation: Invocation) -> dict[str, str]:
        env = {**QUIET, **({"IS_SANDBOX": "1"} if invocation.root else {})}
        if invocation.model_retries is not None:
            env["CLAUDE_CODE_MAX_RETRIES"] = str(invocation.model_retries)
        return env

    def stdin(self, invocation: Invocation) -> bytes:
        """The prompt as the first ``user`` message, with the request's images beside it as
        content blocks (what the model then sees, not only a path it could read)."""
        images = [a for a in invocation.attachments if a.is_image]
        if not images:
            return user_message(invocation.prompt)
        blocks: list[dict[str, Any]] = [{"type": "text", "text": invocation.prompt}]
        for image in images:
            source = {"type": "base64", "media_type": image.mime_type, "data": base64.b64encode(image.data).decode()}
            blocks.append({"type": "image", "source": source})
        return user_message(blocks)

    def followup(self, message: str) -> bytes:
        return user_message(message)

    def parser(self, invocation: Invocation) -> StreamParser:
        return ClaudeParser()
