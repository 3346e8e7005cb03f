"""Each harness parser on its tool's output stream: the typed events, summary and failure."""

from __future__ import annotations

from pathlib import Path

from core.events import EventKind, RunEvent
from core.settings import Settings
from runner.harness import Invocation, driver_for
from runner.harness.base import StreamParser, TextParser
from runner.harness.claude import ClaudeParser
from runner.harness.codex import CodexParser
from runner.harness.gemini import GeminiParser

FIXTURES = Path(__file__).parent / "fixtures"


def parse(parser: StreamParser, name: str) -> list[RunEvent]:
    return [event for line in (FIXTURES / name).read_text().splitlines() for event in parser.feed(line)]


def kinds(events: list[RunEvent]) -> list[str]:
    return [e.kind.value for e in events]


def test_claude_success():
    parser = ClaudeParser()
    events = parse(parser, "claude.stream-json.success.jsonl")
    assert kinds(events) == ["message", "command", "file_edit", "message"]
    assert events[1].command == 'grep -n "password" src/auth/login.ts'
    assert events[2].path == "/workspace/web/src/auth/login.ts"
    assert parser.summary == "Fixed: empty or missing passwords now return a validation error instead of a 500."
    assert parser.failure is None


def test_claude_error():
    parser = ClaudeParser()
    events = parse(parser, "claude.stream-json.error.jsonl")
    assert kinds(events) == ["error"]
    assert parser.failure


def test_codex_success():
    parser = CodexParser()
    events = parse(parser, "codex.exec-json.success.jsonl")
    assert kinds(events) == ["thought", "command", "file_edit", "message"]
    assert events[1].exit_code == 0 and events[1].command == "bash -lc 'grep -n password src/auth/login.ts'"
    assert events[2].path == "src/auth/login.ts"
    assert parser.summary == "Empty passwords are now rejected with a validation error; added a unit test."


def test_codex_failure_is_reported_once():
    parser = CodexParser()
    events = parse(parser, "codex.exec-json.failed.jsonl")
    assert kinds(events) == ["error"]
    assert parser.failure == "stream disconnected before completion"


def test_gemini_joins_deltas_and_types_tools():
    parser = GeminiParser()
    events = parse(parser, "gemini.stream-json.success.jsonl")
    assert kinds(events) == ["message", "command", "file_edit", "message"]
    assert events[0].text == "I'll check the login handler."
    assert events[1].command == "grep -n password src/auth/login.ts"
    assert parser.summary == "Empty passwords are rejected now."
    assert parser.failure is None


def test_text_output_and_banners_between_json_lines():
    parser = TextParser()
    assert kinds([e for line in ["Looking around", "", "All done.", "Opened a fix."] for e in parser.feed(line)]) == [
        "message",
        "message",
        "message",
    ]
    assert parser.summary == "All done.\nOpened a fix."
    assert kinds(ClaudeParser().feed("Warning: something odd")) == ["message"]


def test_driver_command_lines():
    invocation = Invocation(prompt="Fix it", prompt_file="/oz/prompt.md", model_id="m1", reasoning_level="high")
    settings = Settings(command_harness="python3 /agent.py --fast", command_harness_format="claude")
    assert driver_for("claude", settings).command(invocation)[:3] == ["claude", "-p", "Fix it"]
    codex = driver_for("codex", settings).command(invocation)
    assert codex[:3] == ["codex", "exec", "--json"] and codex[-1] == "Fix it" and "model_reasoning_effort=high" in codex
    assert driver_for("gemini", settings).command(invocation)[:2] == ["gemini", "-p"]
    assert driver_for(None, settings).command(invocation)[:3] == ["oz", "agent", "run"]
    command = driver_for("command", settings)
    assert command.command(invocation) == ["python3", "/agent.py", "--fast"]  # prompt not in argv
    assert isinstance(command.parser(), ClaudeParser)


def test_headlines_for_status_lines():
    assert RunEvent(kind=EventKind.COMMAND, command="pytest -q").headline() == "running `pytest -q`"
    assert RunEvent(kind=EventKind.FILE_EDIT, path="a.py").headline() == "editing a.py"
