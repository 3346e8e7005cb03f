"""Harness drivers, one per ``Harness.type`` of the Oz SDK plus ``command``."""

from __future__ import annotations

from collections.abc import Callable

from core.errors import ErrorCode, OzError
from core.settings import Settings
from runner.harness.base import Driver, Invocation, StreamParser, TextParser
from runner.harness.claude import ClaudeDriver, ClaudeParser
from runner.harness.codex import CodexDriver, CodexParser
from runner.harness.command import CommandDriver
from runner.harness.gemini import GeminiDriver, GeminiParser
from runner.harness.oz import OzDriver

PARSERS: dict[str, Callable[[Invocation], StreamParser]] = {
    "claude": lambda _invocation: ClaudeParser(),
    # Codex's stream never names its model: the run's is what its tokens are priced by.
    "codex": lambda invocation: CodexParser(invocation.model_id or "codex-default"),
    "gemini": lambda _invocation: GeminiParser(),
    "text": lambda _invocation: TextParser(),
}
DRIVERS: dict[str, Callable[[], Driver]] = {
    "oz": OzDriver,
    "claude": ClaudeDriver,
    "codex": CodexDriver,
    "gemini": GeminiDriver,
}


def driver_for(harness_type: str | None, settings: Settings) -> Driver:
    """The driver for a run's ``config.harness.type`` (the gateway's default when unset)."""
    name = harness_type or settings.default_harness
    if name == "command":
        if not settings.command_harness:
            raise OzError(ErrorCode.INTERNAL_ERROR, "the command harness is selected but OZGW_COMMAND_HARNESS is empty")
        return CommandDriver(settings.command_harness, PARSERS[settings.command_harness_format])
    if name not in DRIVERS:
        raise OzError(ErrorCode.INVALID_REQUEST, f"unknown harness {name!r}")
    return DRIVERS[name]()


__all__ = ["Driver", "Invocation", "StreamParser", "driver_for"]
