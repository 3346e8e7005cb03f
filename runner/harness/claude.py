"""Claude Code: ``claude -p … --output-format stream-json --verbose``."""

from __future__ import annotations

from typing import Any

from core.events import EventKind, RunEvent
from runner.harness.base import Driver, Invocation, JsonLinesParser, StreamParser

FILE_TOOLS = {"Edit", "Write", "MultiEdit", "NotebookEdit"}


class ClaudeParser(JsonLinesParser):
    def on_object(self, obj: dict[str, Any]) -> list[RunEvent]:
        kind = obj.get("type")
        if kind == "assistant":
            return [e for item in obj.get("message", {}).get("content", []) if (e := self._content(item))]
        if kind == "result":
            if obj.get("is_error") or obj.get("subtype") != "success":
                self.failure = obj.get("result") or f"Claude Code stopped: {obj.get('subtype', 'error')}"
                return [RunEvent(kind=EventKind.ERROR, text=self.failure)]
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


class ClaudeDriver(Driver):
    name = "claude"

    def command(self, invocation: Invocation) -> list[str]:
        argv = [
            "claude",
            "-p",
            invocation.prompt,
            "--output-format",
            "stream-json",
            "--verbose",
            "--permission-mode",
            "bypassPermissions",
        ]
        if invocation.model_id:
            argv += ["--model", invocation.model_id]
        return argv

    def parser(self) -> StreamParser:
        return ClaudeParser()
