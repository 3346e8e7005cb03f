"""Every public endpoint, fuzzed with Hypothesis: bodies, headers, query strings and path
parameters nobody wrote by hand.  Whatever arrives, the gateway never answers 5xx, an unsigned
or unauthenticated request changes no state (no run, no row of any table, nothing queued),
and no response echoes a secret the gateway holds."""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.accounts import create_account
from core.keys import create_key
from core.queue import RunQueue
from core.store import Store
from tests.support.fuzz import OpenGateway, row_counts

pytestmark = pytest.mark.timeout(600)
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,  # no example database in the checkout: every run draws afresh
)
SIGNATURE_HEADERS = [
    "X-Slack-Signature",
    "X-Slack-Request-Timestamp",
    "Linear-Signature",
    "Linear-Delivery",
    "Linear-Event",
    "X-Hub-Signature-256",
    "X-GitHub-Event",
    "X-GitHub-Delivery",
]
OTHER_HEADERS = [
    "Content-Type",
    "Authorization",
    "Idempotency-Key",
    "X-Oz-Source",
    "Cookie",
    "Accept",
    "Content-Encoding",
    "X-Slack-Retry-Num",
]
CONTENT_TYPES = [
    "application/json",
    "application/x-www-form-urlencoded",
    "text/plain",
    "application/json; charset=latin-1",
]
header_value = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=120).map(str.strip)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=60),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=5),
    max_leaves=40,
)
PLAUSIBLE_KEYS = ["type", "action", "event", "data", "prompt", "config", "team_id", "challenge", "token", "payload"]
plausible_objects = st.dictionaries(st.sampled_from(PLAUSIBLE_KEYS) | st.text(max_size=12), json_values, max_size=8)
bodies = st.one_of(
    st.binary(max_size=4096),
    json_values.map(lambda v: json.dumps(v).encode()),
    plausible_objects.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.text(max_size=10), st.text(max_size=40), max_size=4).map(
        lambda d: "&".join(f"{k}={v}" for k, v in d.items()).encode("utf-8", "surrogatepass")
    ),
)
segment = st.one_of(
    st.uuids().map(str),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="/?#%"), min_size=1, max_size=40),
)
queries = st.dictionaries(
    st.sampled_from(["state", "limit", "cursor", "token", "code", "state[]", "source", "expires", "signature"])
    | st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=10),
    header_value,
    max_size=5,
)


def summary(suite: str, seen: Counter[int]) -> None:
    print(json.dumps({"fuzz": suite, "requests": sum(seen.values()), "statuses": dict(sorted(seen.items()))}))


def routes(gateway: OpenGateway) -> list[tuple[str, str]]:
    """(method, path template) of every route the gateway serves."""
    found = []
    for route in gateway.server.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        template = info.get("formatter") or info.get("path")
        if template and route.method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            found.append((route.method, template))
    assert len(found) > 20, found
    return sorted(set(found))


@st.composite
def requests_to(draw: st.DrawFn, templates: list[tuple[str, str]], authorization: str | None) -> dict:
    method, template = draw(st.sampled_from(templates))
    if draw(st.integers(0, 9)) == 0:
        method = draw(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]))
    path = re.sub(r"\{[^}]+\}", lambda _m: draw(segment), template)
    headers = draw(st.dictionaries(st.sampled_from(SIGNATURE_HEADERS + OTHER_HEADERS), header_value, max_size=6))
    if draw(st.booleans()):
        headers["Content-Type"] = draw(st.sampled_from(CONTENT_TYPES))
    if authorization:
        headers["Authorization"] = authorization
    return {"method": method, "path": path, "headers": headers, "params": draw(queries), "data": draw(bodies)}


def send(gateway: OpenGateway, request: dict) -> requests.Response:
    return requests.request(
        request["method"],
        gateway.server.url + request["path"],
        headers=request["headers"],
        params=request["params"],
        data=request["data"],
        timeout=30,
        allow_redirects=False,
    )


def assert_sane(
    gateway: OpenGateway, request: dict, response: requests.Response, seen: Counter[int] | None = None
) -> None:
    """The invariants every answer keeps; ``seen`` counts the statuses (for the summary line)."""
    if seen is not None:
        seen[response.status_code] += 1
    where = f"{request['method']} {request['path']}"
    assert response.status_code < 500, f"{where} answered {response.status_code}: {response.text[:300]}"
    for secret in gateway.secrets:
        assert secret not in response.text, f"{where} echoed a secret"
        assert all(secret not in v for v in response.headers.values()), f"{where} echoed a secret in a header"


def test_no_request_without_credentials_fails_the_gateway_or_changes_anything(
    open_gateway: OpenGateway, store: Store, queue: RunQueue
):
    templates = routes(open_gateway)
    before = row_counts(store)

    @FUZZ
    @given(request=requests_to(templates, None))
    def check(request: dict) -> None:
        assert_sane(open_gateway, request, send(open_gateway, request), seen)

    seen: Counter[int] = Counter()
    check()
    summary("unauthenticated", seen)
    assert row_counts(store) == before
    assert queue.queue.count == 0


def test_no_body_or_query_from_a_signed_in_person_fails_the_gateway(
    open_gateway: OpenGateway, store: Store, queue: RunQueue
):
    with store.session() as session:
        account = create_account(session, "fuzz@acme.dev", "acme")
        _record, key = create_key(session, account, "fuzz")
    api = [(m, t) for m, t in routes(open_gateway) if t.startswith("/api/v1/")]
    plausible_runs = st.fixed_dictionaries(
        {},
        optional={
            "prompt": st.text(max_size=200),
            "title": json_values,
            "config": plausible_objects,
            "team": json_values,
            "skill": json_values,
            "metadata": json_values,
            "attachments": json_values,
            "conversation_id": json_values,
            "parent_run_id": st.just(str(uuid.uuid4())) | json_values,
        },
    )

    @FUZZ
    @given(
        request=requests_to(api, f"Bearer {key}"),
        run_body=plausible_runs.map(lambda v: json.dumps(v).encode()),
        as_run=st.booleans(),
    )
    def check(request: dict, run_body: bytes, as_run: bool) -> None:
        if as_run:
            request = {**request, "method": "POST", "path": "/api/v1/agent/runs", "data": run_body}
            request["headers"] = {**request["headers"], "Content-Type": "application/json"}
        response = send(open_gateway, request)
        assert_sane(open_gateway, request, response, seen)
        assert key not in response.text  # the person's own key is never shown back either

    seen: Counter[int] = Counter()
    check()
    summary("signed-in", seen)
