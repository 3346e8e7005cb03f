"""With the app's client credentials the gateway gets its own Linear token and renews it days
before its 30 days run out — the Linear front door does not die on day 31.  A renewal Linear
refuses keeps the kept token in use while it holds, and ``integration list`` says so; with no
token left, no run starts and the list says what to fix."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from bots.linear import queries
from bots.linear.clients import LinearClients
from bots.linear.tokens import LinearTokenUnavailable
from core.queue import RunQueue
from core.settings import Settings
from core.store import Store
from tests.fakes.linear import FakeLinear
from tests.live_server import LiveServer, gateway_server
from tests.support.linear import LinearDelivery, cli_json, payload
from tests.support.slack import run_count
from tests.support.waiting import wait_for

DAY = 86400


def used_tokens(fake: FakeLinear) -> list[str]:
    return [o.authorization.removeprefix("Bearer ") for o in fake.operations]


def integration_list(settings: Settings) -> list[dict]:
    return cli_json(settings, "integration", "list", "--email", "ada@acme.dev")


async def test_the_app_token_is_requested_then_renewed_before_it_runs_out(
    app_settings: Settings, fake_linear: FakeLinear, store: Store, ada, linear_integration, tmp_path
):
    fake_linear.lifetimes = [2 * DAY]  # the first grant is already inside the renewal window
    client = LinearClients(app_settings, store, ThreadPoolExecutor(2)).default
    for _ in range(3):
        await client.execute(queries.VIEWER)
    await client.close()

    assert len(fake_linear.granted) == 2  # asked once, renewed once, then the 30-day one holds
    assert used_tokens(fake_linear) == [fake_linear.granted[0], fake_linear.granted[1], fake_linear.granted[1]]
    [linear] = [i for i in integration_list(app_settings) if i["provider"] == "linear"]
    assert linear["token"].startswith("valid until ") and linear["token"].endswith("renewed automatically")


async def test_a_refused_renewal_keeps_the_token_that_holds_and_says_so(
    app_settings: Settings, fake_linear: FakeLinear, store: Store, ada, linear_integration, tmp_path
):
    fake_linear.lifetimes = [2 * DAY]
    client = LinearClients(app_settings, store, ThreadPoolExecutor(2)).default
    await client.execute(queries.VIEWER)
    fake_linear.refuse_grants = True  # the app's secret was rotated in Linear, say
    await client.execute(queries.VIEWER)
    await client.close()

    assert used_tokens(fake_linear) == [fake_linear.granted[0]] * 2, fake_linear.granted
    [linear] = [i for i in integration_list(app_settings) if i["provider"] == "linear"]
    assert "renewal has been failing since" in linear["token"] and "Client authentication failed" in linear["token"]
    assert "OZGW_LINEAR_CLIENT_ID" in linear["token"]


@pytest.fixture
def app_gateway(app_settings: Settings, store: Store, queue: RunQueue) -> Iterator[LiveServer]:
    with gateway_server(app_settings, store, queue) as server:
        yield server


def test_without_a_token_no_run_starts_and_the_list_says_what_to_fix(
    app_settings: Settings,
    app_gateway: LiveServer,
    webhook_secret: str,
    fake_linear: FakeLinear,
    store: Store,
    queue: RunQueue,
    ada,
    linear_integration,
    tmp_path,
):
    fake_linear.refuse_grants = True
    deliver = LinearDelivery(f"{app_gateway.url}/linear/webhook", webhook_secret)
    assert deliver.post(payload("agent_session_event.created")).status_code == 200

    # The handling after the answer asks for a token, is refused, records why, and stops there.
    def linear_status() -> str:
        return next(i["token"] for i in integration_list(app_settings) if i["provider"] == "linear")

    wait_for(lambda: linear_status().startswith("no token: Linear refused the app's credentials"), what="the refusal")
    assert run_count(store) == 0 and queue.queue.count == 0
    assert fake_linear.operations == []  # nothing reached Linear without a token


async def test_a_token_that_holds_nowhere_is_an_error_naming_the_fix(
    app_settings: Settings, fake_linear: FakeLinear, store: Store
):
    fake_linear.refuse_grants = True
    client = LinearClients(app_settings, store, ThreadPoolExecutor(1)).default
    with pytest.raises(LinearTokenUnavailable, match="OZGW_LINEAR_CLIENT_ID"):
        await client.execute(queries.VIEWER)
