"""``oz-gateway`` as a test runs it: in-process through click (fast) or as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
import uuid
from pathlib import Path

from tests.redis_server import REDIS_URL


class Cli:
    """``oz-gateway`` on a fresh data dir: in-process through click's runner (fast), or as a
    user runs it, a subprocess (``subprocess=True``; the first test keeps one such path)."""

    def __init__(self, data_dir: Path, *, subprocess: bool = False) -> None:
        self.env = {
            "OZGW_DATA_DIR": str(data_dir),
            "OZGW_REDIS_URL": REDIS_URL,
            "OZGW_QUEUE_NAME": f"oz-cli-{uuid.uuid4().hex[:8]}",
        }
        self.subprocess = subprocess

    def __call__(self, *args: str, ok: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
        result = self._subprocess(args, env) if self.subprocess else self._in_process(args, env)
        if ok:
            assert result.returncode == 0, result.stderr
        return result

    def _subprocess(self, args: tuple[str, ...], env: dict | None) -> subprocess.CompletedProcess:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("OZGW_") and k != "WARP_API_KEY"}
        return subprocess.run(
            [sys.executable, "-m", "cli", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**inherited, **self.env, **(env or {})},
        )

    def _in_process(self, args: tuple[str, ...], env: dict | None) -> subprocess.CompletedProcess:
        from click.testing import CliRunner

        from cli.main import main
        from core.settings import get_settings

        unset = {k: None for k in os.environ if k.startswith("OZGW_") or k == "WARP_API_KEY"}
        get_settings.cache_clear()  # the CLI reads its settings once per process: this call's
        try:
            result = CliRunner().invoke(main, list(args), env={**unset, **self.env, **(env or {})})
        finally:
            get_settings.cache_clear()
        stderr = result.stderr
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            stderr += "".join(traceback.format_exception(result.exception))  # as the process would print
        return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, stderr)

    def json(self, *args: str, **kwargs) -> object:
        return json.loads(self("--output-format", "json", *args, **kwargs).stdout)
