"""What every harness driver provides: the command line, and a parser for its output stream."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from core.events import EventKind, RunEvent


@dataclass(frozen=True)
class Invocation:
    """Everything a driver may put on the command line or in the agent's environment."""

    prompt: str
    prompt_file: str
    model_id: str | None = None
    reasoning_level: str | None = None
    env: dict[str, str] = field(default_factory=dict)


class StreamParser(ABC):
    """Turns a harness's output, line by line, into typed events.

    ``summary`` is the agent's final answer when it gave one; ``failure`` is set when the
    harness itself reported that the task failed (even if it exited 0).
    """

    def __init__(self) -> None:
        self.summary: str | None = None
        self.failure: str | None = None

    @abstractmethod
    def feed(self, line: str) -> list[RunEvent]: ...


class JsonLinesParser(StreamParser):
    """For ``stream-json``-style harnesses: non-JSON lines (banners, warnings) become messages."""

    def feed(self, line: str) -> list[RunEvent]:
        line = line.strip()
        if not line:
            return []
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            return [RunEvent(kind=EventKind.MESSAGE, text=line)]
        if not isinstance(obj, dict):
            return []
        return self.on_object(obj)

    @abstractmethod
    def on_object(self, obj: dict[str, Any]) -> list[RunEvent]: ...


class TextParser(StreamParser):
    """Plain text: each line is a message; the last paragraph is the summary."""

    def __init__(self) -> None:
        super().__init__()
        self._paragraph: list[str] = []

    def feed(self, line: str) -> list[RunEvent]:
        text = line.rstrip()
        if not text.strip():
            if self._paragraph:
                self.summary = "\n".join(self._paragraph)
            self._paragraph = []
            return []
        self._paragraph.append(text)
        self.summary = "\n".join(self._paragraph)
        return [RunEvent(kind=EventKind.MESSAGE, text=text)]


class Driver(ABC):
    name: str

    @abstractmethod
    def command(self, invocation: Invocation) -> list[str]: ...

    @abstractmethod
    def parser(self) -> StreamParser: ...
