"""Codex CLI: ``codex exec --json``."""

from __future__ import annotations

from typing import Any

from core.events import EventKind, RunEvent
from runner.harness.base import Driver, Invocation, JsonLinesParser, StreamParser


class CodexParser(JsonLinesParser):
    def on_object(self, obj: dict[str, Any]) -> list[RunEvent]:
        kind = obj.get("type")
        if kind == "item.completed":
            return self._item(obj.get("item") or {})
        if kind in ("error", "turn.failed"):
            message = obj.get("message") or (obj.get("error") or {}).get("message") or "Codex failed"
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


class CodexDriver(Driver):
    name = "codex"

    def command(self, invocation: Invocation) -> list[str]:
        argv = ["codex", "exec", "--json", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox"]
        if invocation.model_id:
            argv += ["--model", invocation.model_id]
        if invocation.reasoning_level:
            argv += ["-c", f"model_reasoning_effort={invocation.reasoning_level}"]
        return [*argv, invocation.prompt]

    def parser(self) -> StreamParser:
        return CodexParser()
