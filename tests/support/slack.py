"""Slack test helpers: signed deliveries of the recorded payloads, and what the store holds."""

from __future__ import annotations

import copy
import json
import time

import requests
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import func, select

from core.models import Run
from core.runs import run_from_row
from core.store import Store
from core.store.tables import RunRow
from tests.fakes.slack import event_fixture
from tests.support.waiting import wait_for  # noqa: F401 - re-exported for the Slack tests

ADA = "U061F7AUR"


class SlackDelivery:
    """Posts Events API bodies to the gateway the way Slack does: signed, with retry headers."""

    def __init__(self, url: str, secret: str) -> None:
        self.url = url
        self.secret = secret

    def headers(self, raw: str, *, timestamp: int | None = None, retry: int | None = None) -> dict[str, str]:
        ts = str(timestamp if timestamp is not None else int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": SignatureVerifier(self.secret).generate_signature(timestamp=ts, body=raw),
        }
        if retry:
            headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        return headers

    def post(self, body: dict, **kwargs: object) -> requests.Response:
        raw = json.dumps(body)
        return requests.post(self.url, data=raw, headers=self.headers(raw, **kwargs), timeout=10)


def event(name: str, **changes: object) -> dict:
    """A recorded payload with fields of its ``event`` changed (``event_id`` at the top level)."""
    body = copy.deepcopy(event_fixture(name))
    if "event_id" in changes:
        body["event_id"] = changes.pop("event_id")
    body["event"].update(changes)
    return body


def all_runs(store: Store) -> list[Run]:
    with store.reader() as session:
        return [run_from_row(r) for r in session.scalars(select(RunRow).order_by(RunRow.created_at))]


def run_count(store: Store) -> int:
    with store.reader() as session:
        return session.scalar(select(func.count()).select_from(RunRow)) or 0
