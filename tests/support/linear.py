"""Linear test helpers: the recorded payloads, signed deliveries, the CLI in-process."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path

import requests

from core.settings import Settings

FIXTURES = Path(__file__).parents[1] / "linear" / "fixtures"


SESSION = "4d23d4ad-b4bb-4ef1-853f-c9c03439d37d"


DELEGATED_SESSION = "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d"


def payload(name: str, **changes: object) -> dict:
    body = copy.deepcopy(json.loads((FIXTURES / f"{name}.json").read_text()))
    body.update(changes)
    body.setdefault("webhookTimestamp", 0)
    return body


class LinearDelivery:
    def __init__(self, url: str, secret: str) -> None:
        self.url = url
        self.secret = secret

    def post(
        self, body: dict, *, fresh: bool = True, signature: str | None = None, delivery: str | None = None
    ) -> requests.Response:
        if fresh:
            body = {**body, "webhookTimestamp": int(time.time() * 1000)}
        raw = json.dumps(body).encode()
        headers = {
            "Content-Type": "application/json",
            "Linear-Delivery": delivery or str(uuid.uuid4()),
            "Linear-Event": body.get("type", ""),
            "Linear-Signature": signature or hmac.new(self.secret.encode(), raw, hashlib.sha256).hexdigest(),
        }
        return requests.post(self.url, data=raw, headers=headers, timeout=10)


def cli_json(settings: Settings, *args: str) -> list[dict] | dict:
    """``oz-gateway --output-format json ARGS`` against this test's store, in-process."""
    from click.testing import CliRunner

    from cli.main import main as cli
    from core.settings import get_settings

    secret = settings.linear_client_secret
    env = {
        "OZGW_DATABASE_URL": settings.effective_database_url,
        "OZGW_DATA_DIR": str(settings.data_dir),
        "OZGW_LINEAR_CLIENT_ID": settings.linear_client_id or "",
        "OZGW_LINEAR_CLIENT_SECRET": secret.get_secret_value() if secret else "",
    }
    get_settings.cache_clear()  # the CLI reads its settings once per process: this test's, please
    try:
        result = CliRunner().invoke(cli, ["--output-format", "json", *args], env=env)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    # stdout alone: the gateway serving this test logs to stderr from its own thread meanwhile
    return json.loads(result.stdout)
