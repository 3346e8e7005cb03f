"""The transcript over the API: JSON, and a live server-sent-event tail while the run works."""

from __future__ import annotations

import json
import threading

import httpx
from oz_agent_sdk import OzAPI

from core.accounts import account_by_email
from core.keys import create_key
from core.store import Store
from runner.context import WorkerContext
from runner.job import run_job
from tests.live_server import LiveServer
from tests.runner_support import Person, with_settings
from tests.support.people import AGENT_LIMIT


def key_for(store: Store, person: Person) -> str:
    with store.session() as session:
        return create_key(session, account_by_email(session, person.principal.email), "events")[1]


def test_live_tail_then_json_transcript(
    ctx: WorkerContext,
    alice: Person,
    make_env,
    start_run,
    store: Store,
    gateway: LiveServer,
):
    ctx = with_settings(ctx, command_harness="/bin/sh /opt/agents/slow.sh", command_harness_format="text")
    key = key_for(store, alice)
    client = OzAPI(api_key=key, base_url=gateway.api_url, max_retries=0)
    run_id = start_run(alice.principal, make_env())
    url = f"{gateway.api_url}/agent/runs/{run_id}/events"
    headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
    received: list[tuple[str, dict]] = []
    progress: list[str] = []

    def follow() -> None:
        with httpx.stream("GET", url, headers=headers, timeout=60) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            kind = None
            for line in response.iter_lines():
                if line.startswith("event: "):
                    kind = line[len("event: ") :]
                elif line.startswith("data: "):
                    received.append((kind, json.loads(line[len("data: ") :])))
                    if kind == "message" and not progress:
                        item = client.agent.runs.retrieve(run_id)  # seen while it works
                        progress.append(f"{item.state}|{item.status_message.message}|{item.is_sandbox_running}")
                    if kind == "end":
                        return

    tail = threading.Thread(target=follow)
    tail.start()
    assert run_job(ctx, run_id) == "SUCCEEDED"
    tail.join(30)

    texts = [data.get("text") for kind, data in received if kind == "message"]
    assert texts == ["step one: reading", "step two: editing", "All done."]
    assert received[-1] == ("end", {"state": "SUCCEEDED"})
    assert progress == ["INPROGRESS|Working: step one: reading|True"]

    page = httpx.get(url, headers={"Authorization": f"Bearer {key}"}).json()
    assert page["state"] == "SUCCEEDED"
    assert [e["kind"] for e in page["events"]] == ["message", "message", "message"]
    assert [e["seq"] for e in page["events"]] == [1, 2, 3]
    later = httpx.get(url, params={"after": 2}, headers={"Authorization": f"Bearer {key}"}).json()
    assert [e["text"] for e in later["events"]] == ["All done."]
    assert client.agent.runs.retrieve(run_id).is_sandbox_running is False


def test_someone_elses_transcript_is_not_found(
    ctx: WorkerContext,
    alice: Person,
    start_run,
    store: Store,
    gateway: LiveServer,
):
    from core.accounts import create_account

    run_id = start_run(alice.principal, None)
    with store.session() as session:
        outsider = create_account(session, "eve@example.com", "other")
        _, key = create_key(session, outsider, "k")
    for accept in ("application/json", "text/event-stream"):
        response = httpx.get(
            f"{gateway.api_url}/agent/runs/{run_id}/events",
            headers={"Authorization": f"Bearer {key}", "Accept": accept},
        )
        assert response.status_code == 404


def test_a_stream_learns_of_the_end_from_the_runs_channel_not_by_polling(
    alice: Person, make_env, store: Store, gateway: LiveServer, queue, monkeypatch
):
    from bots import streams
    from core import runs
    from core.models.wire import RunAgentRequest

    monkeypatch.setattr(streams, "FALLBACK_POLL_SECONDS", 3600.0)  # no rescue by the store
    key = key_for(store, alice)
    run_id = runs.create(
        store, None, alice.principal, RunAgentRequest(prompt="wait"), agent_limit=AGENT_LIMIT
    ).run.run_id
    headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
    lines: list[str] = []
    with httpx.stream("GET", f"{gateway.api_url}/agent/runs/{run_id}/events", headers=headers, timeout=30) as stream:
        runs.cancel(store, queue, alice.principal, run_id)  # announces on the run's channel
        for line in stream.iter_lines():
            lines.append(line)
    assert "event: end" in lines and 'data: {"state": "CANCELLED"}' in lines


def test_live_streams_are_capped_per_key(alice: Person, store: Store, gateway: LiveServer):
    from bots.streams import STREAMS_PER_KEY
    from core import runs
    from core.models.wire import RunAgentRequest

    key = key_for(store, alice)
    run_id = runs.create(
        store, None, alice.principal, RunAgentRequest(prompt="wait"), agent_limit=AGENT_LIMIT
    ).run.run_id
    url = f"{gateway.api_url}/agent/runs/{run_id}/events"
    headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
    with httpx.Client(timeout=30) as client:
        opened = [client.stream("GET", url, headers=headers) for _ in range(STREAMS_PER_KEY)]
        responses = [o.__enter__() for o in opened]
        try:
            assert all(r.status_code == 200 for r in responses)
            refused = client.get(url, headers=headers)
            assert refused.status_code == 429
            assert refused.json()["error"].endswith(
                f"(at most {STREAMS_PER_KEY} live event streams per API key; close one first)"
            )
        finally:
            for o in opened:
                o.__exit__(None, None, None)


def test_open_streams_end_when_the_web_process_stops(alice: Person, store: Store, settings, queue):
    """A deploy stops the web process: its open streams end at once (the client reconnects with
    ``Last-Event-ID``) rather than holding the shutdown until the run finishes."""
    from bots.streams import STREAMS
    from core import runs
    from core.models.wire import RunAgentRequest
    from tests.live_server import gateway_server
    from tests.support.waiting import wait_for

    key = key_for(store, alice)
    run_id = runs.create(
        store, None, alice.principal, RunAgentRequest(prompt="wait"), agent_limit=AGENT_LIMIT
    ).run.run_id
    headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
    ended = threading.Event()
    with gateway_server(settings, store, queue) as server:
        url = f"{server.api_url}/agent/runs/{run_id}/events"

        def follow() -> None:
            with httpx.stream("GET", url, headers=headers, timeout=60) as response:
                for _line in response.iter_lines():
                    pass
            ended.set()

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        wait_for(lambda: server.app[STREAMS], what="the stream to open")
    assert not server._thread.is_alive()  # the server's shutdown finished
    assert ended.wait(5)  # and the client saw its stream end
