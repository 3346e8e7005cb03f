"""Gemini CLI: ``gemini -p … --output-format stream-json`` (init / message / tool_use /
tool_result / error / result events)."""

from __future__ import annotations

from typing import Any

from core.events import EventKind, RunEvent
from runner.harness.base import Driver, Invocation, JsonLinesParser, StreamParser

SHELL_TOOLS = {"run_shell_command", "shell"}
FILE_TOOLS = {"write_file", "replace", "edit", "edit_file"}


class GeminiParser(JsonLinesParser):
    def __init__(self) -> None:
        super().__init__()
        self._reply: list[str] = []

    def on_object(self, obj: dict[str, Any]) -> list[RunEvent]:
        match obj.get("type"):
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
                events = self._flush()
                if obj.get("status") not in (None, "success"):
                    self.failure = (obj.get("error") or {}).get("message") or f"Gemini CLI: {obj.get('status')}"
                    events.append(RunEvent(kind=EventKind.ERROR, text=self.failure))
                return events
        return []

    def _message(self, text: str) -> RunEvent:
        self.summary = text
        return RunEvent(kind=EventKind.MESSAGE, text=text)

    def _flush(self) -> list[RunEvent]:
        text, self._reply = "".join(self._reply), []
        return [self._message(text)] if text.strip() else []


class GeminiDriver(Driver):
    name = "gemini"

    def command(self, invocation: Invocation) -> list[str]:
        argv = ["gemini", "-p", invocation.prompt, "--output-format", "stream-json", "--yolo"]
        if invocation.model_id:
            argv += ["--model", invocation.model_id]
        return argv

    def parser(self) -> StreamParser:
        return GeminiParser()
