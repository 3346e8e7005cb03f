"""Gemini CLI: ``gemini --output-format stream-json --yolo`` with the prompt on standard input
(init / message / tool_use / tool_result / error / result events).

Its settings come from a system settings file the host writes into the read-only ``/oz``
(``GEMINI_CLI_SYSTEM_SETTINGS_PATH``; system settings override anything in the workspace):
API-key auth, folder trust off (the container is the trusted sandbox, and an untrusted folder
would turn ``--yolo`` back into asking), usage statistics and update checks off.  A model
gateway is ``GOOGLE_GEMINI_BASE_URL``.  A follow-up is a next turn: ``--resume latest``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from core.events import EventKind, RunEvent
from core.models import ModelUsage
from runner.harness.base import Driver, Invocation, JsonLinesParser, StreamParser

SHELL_TOOLS = {"run_shell_command", "shell"}
FILE_TOOLS = {"write_file", "replace", "edit", "edit_file"}
SETTINGS_FILE = "gemini-settings.json"
SETTINGS = {
    "security": {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {"enabled": False}},
    "privacy": {"usageStatisticsEnabled": False},
    "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
    "telemetry": {"enabled": False},
}


def _mcp_server(server: Mapping[str, Any]) -> dict[str, Any]:
    """One server in Gemini CLI's ``mcpServers`` shape: ``httpUrl`` is streamable HTTP (its
    ``url`` would mean the older SSE transport); ``trust`` skips the confirmations ``--yolo``
    already skips for its own tools."""
    if server.get("url"):
        return {"httpUrl": server["url"], "headers": dict(server.get("headers") or {}), "trust": True}
    return {
        "command": server["command"],
        "args": list(server.get("args") or []),
        "env": dict(server.get("env") or {}),
        "trust": True,
    }


class GeminiParser(JsonLinesParser):
    def __init__(self) -> None:
        super().__init__()
        self._reply: list[str] = []

    def on_object(self, obj: dict[str, Any]) -> list[RunEvent]:
        match obj.get("type"):
            case "init":
                self.session_id = obj.get("session_id") or self.session_id
            case "message" if obj.get("role") == "assistant":
                text = obj.get("content", "")
                if obj.get("delta"):
                    self._reply.append(text)  # deltas are joined into one message at the next step
                    return []
                return [self._message(text)]
            case "tool_use":
                events = self._flush()
                name, args = obj.get("tool_name", "tool"), obj.get("parameters") or {}
                if name in SHELL_TOOLS:
                    events.append(RunEvent(kind=EventKind.COMMAND, command=args.get("command", ""), tool=name))
                elif name in FILE_TOOLS:
                    events.append(RunEvent(kind=EventKind.FILE_EDIT, path=args.get("file_path"), tool=name))
                else:
                    events.append(RunEvent(kind=EventKind.TOOL_CALL, tool=name, data=args))
                return events
            case "error":
                return [*self._flush(), RunEvent(kind=EventKind.ERROR, text=obj.get("message", ""))]
            case "result":
                return self._result(obj)
        return []

    def _result(self, obj: dict[str, Any]) -> list[RunEvent]:
        events = self._flush()
        self.turns += 1
        models = (obj.get("stats") or {}).get("models") or {}
        self.usage = [
            ModelUsage(
                model=name,
                input_tokens=int(numbers.get("input_tokens") or 0),
                output_tokens=int(numbers.get("output_tokens") or 0),
                cached_input_tokens=int(numbers.get("cached") or 0),
            )
            for name, numbers in models.items()
        ]
        if obj.get("status") not in (None, "success"):
            self.failure = (obj.get("error") or {}).get("message") or f"Gemini CLI: {obj.get('status')}"
            events.append(RunEvent(kind=EventKind.ERROR, text=self.failure))
        else:
            self.failure = None
        return events

    def _message(self, text: str) -> RunEvent:
        self.summary = text
        return RunEvent(kind=EventKind.MESSAGE, text=text)

    def _flush(self) -> list[RunEvent]:
        text, self._reply = "".join(self._reply), []
        return [self._message(text)] if text.strip() else []


class GeminiDriver(Driver):
    name = "gemini"
    program = "gemini"
    install_hint = "npm install -g @google/gemini-cli (see manifests/images/agent)"
    key_secrets = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    model_hosts = ("generativelanguage.googleapis.com",)
    base_url_variables = ("GOOGLE_GEMINI_BASE_URL",)

    def command(self, invocation: Invocation) -> list[str]:
        argv = ["gemini", "--output-format", "stream-json", "--yolo"]
        if invocation.model_id:
            argv += ["--model", invocation.model_id]
        if invocation.resume:
            argv += ["--resume", "latest"]
        return argv

    def environment(self, invocation: Invocation) -> dict[str, str]:
        env = {"GEMINI_CLI_SYSTEM_SETTINGS_PATH": f"{invocation.config_dir}/{SETTINGS_FILE}"}
        if not invocation.variables.get("GEMINI_API_KEY") and invocation.variables.get("GOOGLE_API_KEY"):
            env["GEMINI_API_KEY"] = invocation.variables["GOOGLE_API_KEY"]
        return env

    def files(self, invocation: Invocation) -> dict[str, str]:
        settings = json.loads(json.dumps(SETTINGS))
        if invocation.model_retries is not None:
            settings["general"]["maxAttempts"] = min(invocation.model_retries + 1, 10)
        if invocation.mcp_servers:
            settings["mcpServers"] = {name: _mcp_server(server) for name, server in invocation.mcp_servers.items()}
        return {SETTINGS_FILE: json.dumps(settings, indent=2)}

    def parser(self, invocation: Invocation) -> StreamParser:
        return GeminiParser()
