"""Warp's own agent: ``oz agent run --prompt …`` in the container, whose output is plain text.

The Oz CLI takes its prompt only as an argument, so this is the one driver with the prompt in
argv; Linux caps one argument at 128 KiB, and a longer prompt is refused before the start
rather than failing inside ``exec``."""

from __future__ import annotations

from core.errors import ErrorCode, OzError
from runner.harness.base import MCP_FILE, Driver, Invocation, StreamParser, TextParser, mcp_json

ARGV_LIMIT = 120 * 1024


class OzDriver(Driver):
    name = "oz"
    program = "oz"
    install_hint = "install the Oz CLI in the image (https://docs.warp.dev/reference/cli/)"
    model_hosts = ("app.warp.dev",)

    def command(self, invocation: Invocation) -> list[str]:
        if len(invocation.prompt.encode()) > ARGV_LIMIT:
            raise OzError(
                ErrorCode.INVALID_REQUEST,
                f"the oz harness passes the prompt as an argument, which is limited to {ARGV_LIMIT} bytes; "
                "use the claude, codex or gemini harness for longer prompts",
            )
        argv = ["oz", "agent", "run", "--prompt", invocation.prompt]
        if invocation.model_id:
            argv += ["--model", invocation.model_id]
        if invocation.mcp_servers:  # the Oz CLI's own --mcp: a JSON object of servers by name
            argv += ["--mcp", f"{invocation.config_dir}/{MCP_FILE}"]
        return argv

    def files(self, invocation: Invocation) -> dict[str, str]:
        return {MCP_FILE: mcp_json(invocation)} if invocation.mcp_servers else {}

    def stdin(self, invocation: Invocation) -> bytes:
        return b""

    def parser(self, invocation: Invocation) -> StreamParser:
        return TextParser()
