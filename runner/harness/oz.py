"""Warp's own agent: ``oz agent run --prompt …`` in the container, whose output is plain text."""

from __future__ import annotations

from runner.harness.base import Driver, Invocation, StreamParser, TextParser


class OzDriver(Driver):
    name = "oz"

    def command(self, invocation: Invocation) -> list[str]:
        argv = ["oz", "agent", "run", "--prompt", invocation.prompt]
        if invocation.model_id:
            argv += ["--model", invocation.model_id]
        return argv

    def parser(self) -> StreamParser:
        return TextParser()
