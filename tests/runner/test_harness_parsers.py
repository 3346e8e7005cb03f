"""Each harness parser on its tool's output stream: the typed events, summary and failure."""

from __future__ import annotations

import dataclasses
import json
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
    parser = CodexParser("gpt-test")
    events = parse(parser, "codex.exec-json.success.jsonl")
    assert kinds(events) == ["thought", "command", "file_edit", "message"]
    assert events[1].exit_code == 0 and events[1].command == "bash -lc 'grep -n password src/auth/login.ts'"
    assert events[2].path == "src/auth/login.ts"
    assert parser.summary == "Empty passwords are now rejected with a validation error; added a unit test."


def test_codex_failure_is_reported_once():
    parser = CodexParser("gpt-test")
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


def test_real_claude_stream():
    parser = ClaudeParser()
    events = parse(parser, "claude-2.1.332.stream-json.jsonl")
    assert kinds(events) == ["message", "tool_call", "message", "file_edit", "message", "command", "message"]
    assert events[5].command == "ls" and events[3].path.endswith("/README.md")
    assert parser.summary == "Updated README.md." and parser.failure is None and parser.turns == 1
    assert parser.session_id
    (usage,) = parser.usage
    assert (usage.model, usage.input_tokens, usage.output_tokens) == ("claude-test-1", 4800, 320)
    assert usage.cost_usd and usage.cost_usd > 0


def test_real_codex_stream():
    parser = CodexParser("gpt-test")
    events = parse(parser, "codex-0.171.0.exec-json.jsonl")
    assert kinds(events) == ["command", "file_edit", "command", "message"]
    assert events[0].command.endswith("cat /tmp/explore/xproj/README.md'") and events[0].exit_code == 0
    assert parser.summary == "Updated README.md." and parser.failure is None and parser.turns == 1
    assert parser.session_id
    assert [(u.model, u.input_tokens, u.output_tokens) for u in parser.usage] == [("gpt-test", 4800, 320)]


def test_real_gemini_stream():
    parser = GeminiParser()
    events = parse(parser, "gemini-0.61.0.stream-json.jsonl")
    assert kinds(events) == ["message", "tool_call", "message", "file_edit", "message", "command", "message"]
    assert events[5].command == "ls"
    assert parser.summary == "Updated README.md." and parser.failure is None and parser.turns == 1
    assert parser.session_id
    assert sum(u.input_tokens for u in parser.usage) == 6000


def test_driver_command_lines_never_carry_the_prompt():
    invocation = Invocation(prompt="Fix it", prompt_file="/oz/prompt.md", model_id="m1", reasoning_level="high")
    settings = Settings(command_harness="python3 /agent.py --fast", command_harness_format="claude")
    for name in ("claude", "codex", "gemini", "command"):
        driver = driver_for(name, settings)
        assert "Fix it" not in " ".join(driver.command(invocation)), name
        assert b"Fix it" in driver.stdin(invocation), name
    claude = driver_for("claude", settings)
    assert claude.command(invocation)[:2] == ["claude", "-p"] and "m1" in claude.command(invocation)
    assert json.loads(claude.stdin(invocation)) == {"type": "user", "message": {"role": "user", "content": "Fix it"}}
    assert claude.environment(invocation).get("IS_SANDBOX") is None
    assert claude.environment(dataclasses.replace(invocation, root=True))["IS_SANDBOX"] == "1"
    codex = driver_for("codex", settings).command(invocation)
    assert codex[:3] == ["codex", "exec", "--json"] and codex[-1] == "-" and 'model_reasoning_effort="high"' in codex
    gemini = driver_for("gemini", settings)
    assert gemini.command(invocation)[:3] == ["gemini", "--output-format", "stream-json"]
    assert "gemini-settings.json" in gemini.files(invocation)
    assert driver_for(None, settings).command(invocation)[:3] == ["oz", "agent", "run"]  # its CLI takes argv only
    command = driver_for("command", settings)
    assert command.command(invocation) == ["python3", "/agent.py", "--fast"]
    assert isinstance(command.parser(invocation), ClaudeParser)


def test_a_model_gateway_becomes_a_codex_provider_and_follow_ups_resume():
    settings = Settings()
    variables = {"OPENAI_BASE_URL": "https://llm.acme.test/v1", "OPENAI_API_KEY": "sk-x"}
    invocation = Invocation(prompt="p", prompt_file="/oz/prompt.md", variables=variables, resume="thread-1")
    codex = driver_for("codex", settings)
    argv = codex.command(invocation)
    assert 'model_providers.model-gateway.base_url="https://llm.acme.test/v1"' in argv
    assert argv[-3:] == ["resume", "thread-1", "-"]
    assert codex.environment(invocation) == {"CODEX_API_KEY": "sk-x"}
    assert driver_for("claude", settings).command(invocation)[-2:] == ["--resume", "thread-1"]
    assert driver_for("gemini", settings).command(invocation)[-2:] == ["--resume", "latest"]


def test_failures_are_classified_for_the_person_who_can_fix_them():
    from runner.agent import classify

    assert classify("API Error: 401 invalid x-api-key").code == "external_authentication_required"
    assert classify("unexpected status 401 Unauthorized: Incorrect API key").code == "external_authentication_required"
    assert classify("API key not valid. Please pass a valid API key.").code == "external_authentication_required"
    assert classify("exceeded retry limit, last status: 429 Too Many Requests").code == "resource_unavailable"
    assert classify("Overloaded").code == "resource_unavailable"
    assert classify("the tests did not pass").code == "agent_process_failed"


def test_headlines_for_status_lines():
    assert RunEvent(kind=EventKind.COMMAND, command="pytest -q").headline() == "running `pytest -q`"
    assert RunEvent(kind=EventKind.FILE_EDIT, path="a.py").headline() == "editing a.py"
