"""What every harness driver provides: how to start its CLI (command line, environment, the
prompt on standard input, config files), what a follow-up looks like to it, and a parser for
its output stream."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.events import EventKind, RunEvent
from core.models import ModelUsage


@dataclass(frozen=True)
class Attachment:
    """A file that came with the request: where the agent finds it, and what it is."""

    path: str
    mime_type: str
    data: bytes

    @property
    def is_image(self) -> bool:
        return self.mime_type.startswith("image/")


@dataclass(frozen=True)
class Invocation:
    """Everything a driver may put on the command line, in the agent's environment or files."""

    prompt: str
    prompt_file: str
    """The prompt's path in the container (``/oz/prompt.md``)."""
    model_id: str | None = None
    reasoning_level: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    """The container's own environment (environment variables and secrets): where a driver
    finds a model gateway's base URL."""
    root: bool = False
    """The agent runs as root (the image has no other user)."""
    resume: str | None = None
    """The CLI's session to continue: this invocation is a later turn (a follow-up)."""
    config_dir: str = "/oz"
    """Where :meth:`Driver.files` appear in the container (read-only)."""
    model_retries: int | None = None
    """How often the CLI may retry a failing model call (``None``: its own default)."""
    attachments: tuple[Attachment, ...] = ()
    """Files that came with the request, placed in the workspace (``.oz/attachments/``)."""
    mcp_servers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """MCP servers by name, merged and with their credentials resolved (``core.mcp``): each is
    ``command`` (+ ``args``, ``env``) for a stdio server or ``url`` (+ ``headers``) for HTTP."""


MCP_FILE = "mcp.json"


def mcp_json(invocation: Invocation) -> str:
    """The run's MCP servers in the Oz CLI's ``--mcp`` file shape: a JSON object by name."""
    return json.dumps({name: dict(server) for name, server in invocation.mcp_servers.items()}, indent=2)


class StreamParser(ABC):
    """Turns a harness's output, line by line, into typed events.

    ``summary`` is the agent's final answer when it gave one; ``failure`` is set when the
    harness itself reported that the task failed (even if it exited 0); ``session_id`` is the
    CLI's own session (to resume for a follow-up); ``usage`` what it reported using;
    ``turns`` how many turns it has finished (a live-input CLI finishes one per message).
    """

    def __init__(self) -> None:
        self.summary: str | None = None
        self.failure: str | None = None
        self.session_id: str | None = None
        self.usage: list[ModelUsage] = []
        self.turns = 0
        self.queued_input = 0
        self.failure_status: int | None = None
        """The model API's HTTP status behind ``failure``, when the CLI reports it."""

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
    program: str | None = None
    """The executable the image must have; checked before the agent starts."""
    install_hint: str = ""
    """How to add the program to an image, for the error when it is missing."""
    key_secrets: tuple[str, ...] = ()
    """Managed secrets one of which must exist: the model key (checked before the container starts)."""
    live_input: bool = False
    """Follow-ups are written to the running CLI's standard input (else: a next turn)."""
    model_hosts: tuple[str, ...] = ()
    """Where the CLI reaches its model API unless a variable points it elsewhere."""
    base_url_variables: tuple[str, ...] = ()
    """Variables that point the CLI at another model API (a company gateway, a test's fake)."""

    def egress(self, invocation: Invocation) -> list[str]:
        """The model API endpoints (``host[:port]`` or URLs) an ``egress`` container must reach."""
        pointed = [invocation.variables[v] for v in self.base_url_variables if invocation.variables.get(v)]
        return pointed or list(self.model_hosts)

    @abstractmethod
    def command(self, invocation: Invocation) -> list[str]: ...

    @abstractmethod
    def parser(self, invocation: Invocation) -> StreamParser: ...

    def environment(self, invocation: Invocation) -> dict[str, str]:
        """Variables for the agent process only (telemetry and update checks off, …)."""
        return {}

    def stdin(self, invocation: Invocation) -> bytes:
        """The process's first input: the prompt itself, so no prompt ever rides in argv."""
        return invocation.prompt.encode()

    def files(self, invocation: Invocation) -> dict[str, str]:
        """Config files the CLI reads, written by the host into ``config_dir`` before the start."""
        return {}

    def followup(self, message: str) -> bytes:
        """A follow-up as the running CLI reads it on standard input (live-input drivers)."""
        raise NotImplementedError(f"{self.name} takes no input while it runs")
