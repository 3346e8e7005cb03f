"""An operator-given command line.  The prompt travels in ``$OZ_PROMPT``, the file
``$OZ_PROMPT_FILE`` and on standard input (never in argv, where long prompts and quoting go
wrong); its output is parsed as whichever harness format the operator says it prints."""

from __future__ import annotations

import shlex
from collections.abc import Callable

from runner.harness.base import MCP_FILE, Driver, Invocation, StreamParser, mcp_json


class CommandDriver(Driver):
    name = "command"

    def __init__(self, command_line: str, parser_factory: Callable[[Invocation], StreamParser]) -> None:
        self.argv = shlex.split(command_line)
        if not self.argv:
            raise ValueError("the command harness needs a command line (OZGW_COMMAND_HARNESS)")
        self._parser_factory = parser_factory

    def command(self, invocation: Invocation) -> list[str]:
        return list(self.argv)

    def files(self, invocation: Invocation) -> dict[str, str]:
        return {MCP_FILE: mcp_json(invocation)} if invocation.mcp_servers else {}

    def environment(self, invocation: Invocation) -> dict[str, str]:
        """``$OZ_MCP_CONFIG``: the run's MCP servers, as the Oz CLI's ``--mcp`` file takes them."""
        return {"OZ_MCP_CONFIG": f"{invocation.config_dir}/{MCP_FILE}"} if invocation.mcp_servers else {}

    def parser(self, invocation: Invocation) -> StreamParser:
        return self._parser_factory(invocation)
