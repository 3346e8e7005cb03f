"""Codex CLI: ``codex exec --json … -`` (the prompt on standard input).

Codex's own sandbox is off (``--dangerously-bypass-approvals-and-sandbox``): the container is
the sandbox, and Codex's would need privileges the container does not have.  A model gateway
named by ``OPENAI_BASE_URL`` becomes a provider of its own (Codex ignores that variable),
speaking the Responses API over HTTPS.  A follow-up is a next turn: ``exec resume <thread> -``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from core.events import EventKind, RunEvent
from core.models import ModelUsage, add_usage
from runner.harness.base import Driver, Invocation, JsonLinesParser, StreamParser

QUIET = ["-c", "analytics.enabled=false", "-c", "feedback.enabled=false", "-c", "check_for_update_on_startup=false"]
KEYS = ("OPENAI_API_KEY", "CODEX_API_KEY")


class CodexParser(JsonLinesParser):
    def __init__(self, model: str) -> None:
        super().__init__()
        self.model = model

    def on_object(self, obj: dict[str, Any]) -> list[RunEvent]:
        kind = obj.get("type")
        if kind == "thread.started":
            self.session_id = obj.get("thread_id") or self.session_id
        elif kind == "item.completed":
            return self._item(obj.get("item") or {})
        elif kind == "turn.completed":
            self.turns += 1
            self.failure = None
            numbers = obj.get("usage") or {}
            turn = ModelUsage(
                model=self.model,
                input_tokens=int(numbers.get("input_tokens") or 0),
                output_tokens=int(numbers.get("output_tokens") or 0),
                cached_input_tokens=int(numbers.get("cached_input_tokens") or 0),
            )
            self.usage = add_usage(self.usage, [turn])
        elif kind in ("error", "turn.failed"):
            message = obj.get("message") or (obj.get("error") or {}).get("message") or "Codex failed"
            if kind == "error" and message.startswith("Reconnecting..."):
                return [RunEvent(kind=EventKind.STATUS, text=message)]  # a retry, not the end
            if self.failure == message:
                return []  # turn.failed repeats the error event
            self.failure = message
            return [RunEvent(kind=EventKind.ERROR, text=message)]
        return []

    def _item(self, item: dict[str, Any]) -> list[RunEvent]:
        match item.get("type"):
            case "reasoning":
                return [RunEvent(kind=EventKind.THOUGHT, text=item.get("text", ""))]
            case "agent_message":
                self.summary = item.get("text") or self.summary
                return [RunEvent(kind=EventKind.MESSAGE, text=item.get("text", ""))]
            case "command_execution":
                return [
                    RunEvent(kind=EventKind.COMMAND, command=item.get("command", ""), exit_code=item.get("exit_code"))
                ]
            case "file_change":
                return [
                    RunEvent(kind=EventKind.FILE_EDIT, path=c.get("path"), data={"change": c.get("kind")})
                    for c in item.get("changes", [])
                ]
            case "mcp_tool_call":
                return [RunEvent(kind=EventKind.TOOL_CALL, tool=f"{item.get('server')}.{item.get('tool')}")]
            case "error":
                return [RunEvent(kind=EventKind.ERROR, text=item.get("message", ""))]
        return []


def _toml(value: Any) -> str:
    """A ``-c`` value Codex parses as TOML: strings and arrays as JSON writes them (valid TOML
    basic strings and arrays), tables inline with quoted keys."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def _mcp_server(name: str, server: Mapping[str, Any]) -> list[str]:
    """One ``[mcp_servers.<name>]`` table as ``-c`` overrides (stdio, or streamable HTTP)."""
    if server.get("url"):
        fields: dict[str, Any] = {"url": server["url"]}
        if server.get("headers"):
            fields["http_headers"] = dict(server["headers"])
    else:
        fields = {"command": server["command"], "args": list(server.get("args") or [])}
        if server.get("env"):
            fields["env"] = dict(server["env"])
    return [part for key, value in fields.items() for part in ("-c", f"mcp_servers.{name}.{key}={_toml(value)}")]


class CodexDriver(Driver):
    name = "codex"
    program = "codex"
    install_hint = "npm install -g @openai/codex (see manifests/images/agent)"
    key_secrets = KEYS
    model_hosts = ("api.openai.com",)
    base_url_variables = ("OPENAI_BASE_URL",)

    def command(self, invocation: Invocation) -> list[str]:
        argv = ["codex", "exec", "--json", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox"]
        argv += QUIET
        if invocation.model_id:
            argv += ["--model", invocation.model_id]
        if invocation.reasoning_level:
            argv += ["-c", f"model_reasoning_effort={json.dumps(invocation.reasoning_level)}"]
        base_url = invocation.variables.get("OPENAI_BASE_URL")
        if base_url:
            provider = {
                "name": "model-gateway",
                "base_url": base_url,
                "env_key": "CODEX_API_KEY",
                "wire_api": "responses",
                "supports_websockets": False,
            }
            if invocation.model_retries is not None:
                retries = invocation.model_retries
                provider |= {"request_max_retries": retries, "stream_max_retries": retries}
            argv += ["-c", 'model_provider="model-gateway"']
            for key, value in provider.items():
                argv += ["-c", f"model_providers.model-gateway.{key}={json.dumps(value)}"]
        for name, server in invocation.mcp_servers.items():
            argv += _mcp_server(name, server)
        for image in (a for a in invocation.attachments if a.is_image):
            argv += ["--image", image.path]
        if invocation.resume:
            argv += ["resume", invocation.resume]
        return [*argv, "-"]

    def environment(self, invocation: Invocation) -> dict[str, str]:
        key = next((invocation.variables[k] for k in KEYS if invocation.variables.get(k)), None)
        return {"CODEX_API_KEY": key} if key else {}

    def parser(self, invocation: Invocation) -> StreamParser:
        return CodexParser(invocation.model_id or "codex-default")
