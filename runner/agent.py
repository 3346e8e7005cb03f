"""Running the agent CLI in the run's container: as the image's non-root user, its prompt on
standard input, one or more turns, and follow-ups delivered while it works.

A follow-up that arrives while the agent works goes straight to the running CLI when its
driver takes live input (Claude Code reads ``user`` messages on stdin); otherwise — or when
the CLI has already finished its last turn — it becomes the next turn in the same CLI session
(``resume``), started as soon as the current one ends.  Either way the transcript says which,
so the person who sent it can see it was taken.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Callable

import structlog
from pydantic import BaseModel

from core.errors import ErrorCode, OzError
from core.events import EventKind, Masker, RunEvent
from core.models import ModelUsage, add_usage
from runner.backends.base import SandboxHandle
from runner.harness import Driver, Invocation, StreamParser
from runner.sandbox import WORKSPACE, OutputTail, StdinChannel

log = structlog.get_logger(__name__)
ENV_PROMPT_LIMIT = 100 * 1024
"""``$OZ_PROMPT`` is set only below this: Linux caps one environment string at 128 KiB."""
LINE_LIMIT = 1024 * 1024
"""A line longer than this (no newline yet) is cut: an agent must not make the worker hoard memory."""
_STATUS = re.compile(
    r"\b(?:status|api_error_status|code)\D{0,3}(\d{3})\b|\b(\d{3}) (?:Unauthorized|Forbidden|Too Many)"
)
"""The HTTP status a CLI's failure message carries, in the shapes the three CLIs print it."""


class Agent:
    """One execution's agent: started with :meth:`run`; :meth:`deliver` may be called from
    another thread (the supervisor) with follow-ups while it runs."""

    def __init__(
        self,
        sandbox: SandboxHandle,
        driver: Driver,
        invocation: Invocation,
        *,
        workdir: str,
        user: str | None,
        masker: Masker,
        record: Callable[[list[RunEvent]], None],
        checkpoint: Callable[[], None],
        tail_chars: int,
    ) -> None:
        self.sandbox = sandbox
        self.driver = driver
        self.invocation = invocation
        self.workdir = workdir
        self.user = user
        self.masker = masker
        self.record = record
        self.checkpoint = checkpoint
        self.tail_chars = tail_chars
        self._lock = threading.Lock()
        self._stdin: StdinChannel | None = None
        self._queued: list[str] = []
        self._finished_turns: list[ModelUsage] = []
        self._parser: StreamParser | None = None

    def live_usage(self) -> list[ModelUsage]:
        """What the agent reported using so far, the turn under way included (read from the
        supervisor's thread to cost the run while it works)."""
        parser = self._parser
        return add_usage(self._finished_turns, parser.usage if parser is not None else [])

    # --- follow-ups, from the supervisor's thread -------------------------------------------

    def deliver(self, messages: list[str]) -> None:
        """Give follow-ups to the running CLI, or keep them for its next turn."""
        notes = []
        with self._lock:
            for message in messages:
                stdin = self._stdin if self.driver.live_input else None
                if stdin is not None and stdin.write(self.driver.followup(message)):
                    notes.append(f"Follow-up delivered to the agent: {message}")
                else:
                    self._queued.append(message)
                    notes.append(f"Follow-up received; the agent takes it when its current turn ends: {message}")
        self.record([RunEvent(kind=EventKind.STATUS, text=note) for note in notes])

    # --- the turns ------------------------------------------------------------------------

    def check_program(self) -> None:
        """The image must have the CLI; say how to add it rather than fail obscurely later."""
        program = self.driver.program
        if not program:
            return
        code = self.sandbox.exec(
            ["/bin/sh", "-c", f"command -v {program}"], workdir="/", on_output=lambda _t: None, user=self.user
        )
        self.checkpoint()
        if code is None:
            raise OzError(ErrorCode.RESOURCE_UNAVAILABLE, "the run's container stopped before the agent started")
        if code != 0:
            raise OzError(
                ErrorCode.ENVIRONMENT_SETUP_FAILED,
                f"add it to the image: {self.driver.install_hint}",
                title=f"The image has no `{program}` for the {self.driver.name} harness",
            )

    def run(self) -> StreamParser:
        """The turns, to the last one's end: its parser (the answer); what all of them used is
        :meth:`live_usage`."""
        invocation = self.invocation
        while True:
            parser = self._turn(invocation)
            self._finished_turns, self._parser = add_usage(self._finished_turns, parser.usage), None
            with self._lock:
                queued, self._queued = self._queued, []
                self._stdin = None
            if not queued:
                return parser
            prompt = "\n\n".join(queued)
            self.record([RunEvent(kind=EventKind.STATUS, text="Starting the next turn with the follow-up")])
            invocation = dataclasses.replace(invocation, prompt=prompt, resume=parser.session_id)

    def _turn(self, invocation: Invocation) -> StreamParser:
        driver = self.driver
        parser = self._parser = driver.parser(invocation)
        tail = OutputTail(self.tail_chars)
        stdin = StdinChannel(driver.stdin(invocation), keep_open=driver.live_input)
        with self._lock:
            self._stdin = stdin
        answered = 0

        def feed(line: str) -> None:
            nonlocal answered
            self.record(parser.feed(line))
            if driver.live_input and parser.turns > answered:
                answered = parser.turns
                if parser.queued_input == 0:  # a turn ended with nothing left to answer: end of input
                    with self._lock:  # a follow-up written before this is in the pipe and still read
                        stdin.close()

        stdout, stderr = LineBuffer(feed, tail.add), LineBuffer(feed, tail.add)
        env = {"OZ_PROMPT_FILE": invocation.prompt_file, "OZ_RUN_ID": invocation.variables.get("OZ_RUN_ID", "")}
        if len(invocation.prompt.encode()) < ENV_PROMPT_LIMIT:
            env["OZ_PROMPT"] = invocation.prompt
        env.update(driver.environment(invocation))
        code = self.sandbox.exec(
            driver.command(invocation),
            workdir=self.workdir,
            on_output=stdout.add,
            on_stderr=stderr.add,
            env=env,
            user=self.user,
            stdin=stdin,
        )
        stdout.flush()
        stderr.flush()
        self.checkpoint()
        if code is None:
            raise OzError(ErrorCode.AGENT_PROCESS_FAILED, "the container stopped while the agent was running")
        if parser.failure:
            raise classify(self.masker.text(parser.failure), parser.failure_status)
        if code != 0:
            raise OzError(
                ErrorCode.AGENT_PROCESS_FAILED, f"exit code {code}: " + self.masker.text(tail.text.strip()[-1000:])
            )
        return parser


class LineBuffer:
    """Cuts one output stream into lines for ``on_line`` (capped, so a newline-less flood
    cannot make the worker hoard memory); every chunk also goes to ``on_chunk``."""

    def __init__(self, on_line: Callable[[str], None], on_chunk: Callable[[str], None]) -> None:
        self.on_line = on_line
        self.on_chunk = on_chunk
        self.pending = ""

    def add(self, chunk: str) -> None:
        self.on_chunk(chunk)
        *lines, self.pending = (self.pending + chunk).split("\n")
        if len(self.pending) > LINE_LIMIT:
            lines.append(self.pending[:LINE_LIMIT])
            self.pending = ""
        for line in lines:
            self.on_line(line)

    def flush(self) -> None:
        if self.pending:
            line, self.pending = self.pending, ""
            self.on_line(line)


def classify(failure: str, status: int | None = None) -> OzError:
    """The CLI's own failure message as the catalog error a person can act on: the model API
    refusing the key is theirs to fix (FAILED); rate limits and overload are retryable."""
    match = _STATUS.search(failure)
    if status is None and match:
        status = int(next(g for g in match.groups() if g))
    lowered = failure.lower()
    if status in (401, 403) or "api key not valid" in lowered or "invalid x-api-key" in lowered:
        return OzError(
            ErrorCode.EXTERNAL_AUTHENTICATION_REQUIRED,
            failure[-1000:],
            title="The model API refused the agent's key",
        )
    if status in (429, 503, 529) or any(w in lowered for w in ("overloaded", "rate limit", "resource exhausted")):
        return OzError(
            ErrorCode.RESOURCE_UNAVAILABLE,
            failure[-1000:],
            title="The model API is rate-limiting or overloaded; the agent gave up",
        )
    return OzError(ErrorCode.AGENT_PROCESS_FAILED, failure[-1000:])


class AgentUser(BaseModel):
    """Who the agent runs as: one of the image's non-root users, or root (``name`` empty)."""

    name: str | None = None
    uid: int = 0
    gid: int = 0

    @property
    def root(self) -> bool:
        return self.name is None


def agent_user(sandbox: SandboxHandle, configured: str | None) -> AgentUser:
    """Who the agent runs as.

    The container runs as root so setup commands can install packages; the agent runs as
    ``configured`` (``OZGW_CONTAINER_USER``) when set, else as the image's own ``USER``, else
    as its ``agent`` user — root only when the image has no other.
    """
    candidates = [configured] if configured else [sandbox.image_user(), "agent"]
    for candidate in candidates:
        if not candidate or candidate.split(":")[0] in ("root", "0"):
            continue
        identity = sandbox.identity(candidate)
        if identity is None or identity[0] == 0:
            continue
        return AgentUser(name=candidate, uid=identity[0], gid=identity[1])
    return AgentUser()


def hand_over(sandbox: SandboxHandle, user: AgentUser, path: str = WORKSPACE) -> None:
    """``path`` (the workspace, by default) becomes the agent's user's, every file in it."""
    if user.root:
        return
    code = sandbox.exec(["chown", "-R", f"{user.uid}:{user.gid}", path], workdir="/", on_output=lambda _t: None)
    if code != 0:
        log.warning("agent.chown_failed", uid=user.uid, path=path, code=code)
