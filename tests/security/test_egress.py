"""An ``egress`` container reaches the endpoints it is allowed and nothing else: not the
host's services, not the cloud metadata address, not an allowed name that resolves to a
private address — each tried for real from inside a run's container."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import docker
import pytest
from aiohttp import web

from core.events import EventKind
from core.network import Endpoint, parse_endpoint
from core.settings import Settings
from runner.context import WorkerContext
from runner.egress import EgressForwarder, hosts_entries, permitted
from runner.job import run_job
from runner.sandbox import Sandbox, SandboxSpec
from tests.live_server import LiveServer
from tests.runner.test_execution import events_of, final
from tests.runner_support import Person, with_settings

PROBE = "/bin/sh /opt/agents/probe.sh {host} {port}"
GET = "(printf 'GET / HTTP/1.0\\r\\n\\r\\n'; sleep 1) | nc -w 3 {} {} 2>&1"


@pytest.fixture
def web_server() -> Iterator[LiveServer]:
    """A service on the host's loopback, as a company model gateway would be."""

    async def hello(_request: web.Request) -> web.Response:
        return web.Response(text="hello through the forwarder")

    app = web.Application()
    app.router.add_get("/", hello)
    server = LiveServer(app)
    server.start()
    yield server
    server.stop()


def lines_of(store, run_id: str) -> list[str]:
    return [e.text for e in events_of(store, run_id) if e.text]


def test_an_allowed_endpoint_is_reached_and_nothing_else(
    ctx: WorkerContext, alice: Person, make_env, start_run, store, web_server: LiveServer
):
    ctx = with_settings(
        ctx,
        egress_allow_private=True,  # the allowed service is on the host's loopback
        command_harness=PROBE.format(host="127.0.0.1", port=web_server.port),
        command_harness_format="text",
    )
    run_id = start_run(alice.principal, make_env(network="egress", egress=[f"127.0.0.1:{web_server.port}"]))

    assert run_job(ctx, run_id) == "SUCCEEDED"

    lines = lines_of(store, run_id)
    assert "allowed: hello through the forwarder" in lines
    metadata = next(line for line in lines if line.startswith("metadata:"))
    assert "HTTP" not in metadata and "can't connect" in metadata, metadata
    redis = next(line for line in lines if line.startswith("redis:"))
    assert "PONG" not in redis and "can't connect" in redis, "the container reached the host's Redis"
    assert final(store, run_id).status_message.message.startswith("probed")


def test_an_allowed_name_that_resolves_to_a_private_address_is_refused_and_said(
    ctx: WorkerContext, alice: Person, make_env, start_run, store, web_server: LiveServer
):
    host = socket.gethostname()
    addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    if any(permitted(a, allow_private=False) for a in addresses):
        pytest.skip(f"{host} resolves to a public address here")
    ctx = with_settings(
        ctx, command_harness=PROBE.format(host=host, port=web_server.port), command_harness_format="text"
    )
    run_id = start_run(alice.principal, make_env(network="egress", egress=[f"{host}:{web_server.port}"]))

    assert run_job(ctx, run_id) == "SUCCEEDED"

    lines = lines_of(store, run_id)
    assert not any("hello through the forwarder" in line for line in lines)
    notes = [e.text for e in events_of(store, run_id) if e.kind == EventKind.STATUS and "Network:" in e.text]
    assert len(notes) == 1, notes
    assert f"a connection to {host.lower()}:{web_server.port} was not made" in notes[0]
    assert "OZGW_EGRESS_ALLOW_PRIVATE" in notes[0]


def test_the_metadata_address_is_refused_even_behind_an_allowed_name(
    docker_client: docker.DockerClient, test_image: str, web_server: LiveServer
):
    """DNS is the attacker's: an allowed name that resolves to the metadata service (or rebinds
    to it) is checked at connect time, so the connection is never made."""
    resolved = {"metadata.attacker.example": ["169.254.169.254"], "rebind.attacker.example": ["10.0.0.7"]}

    async def resolver(host: str, _port: int) -> list[str]:
        return resolved[host]

    endpoints = [Endpoint("metadata.attacker.example", 80), Endpoint("rebind.attacker.example", 80)]
    refused: list[str] = []
    sandbox = Sandbox.start(
        docker_client,
        "egress-unit",
        SandboxSpec(
            image=test_image,
            binds=[],
            network_mode="none",
            memory="64m",
            cpus=0.5,
            pids=64,
            pull=False,
            extra_hosts=hosts_entries(endpoints),
        ),
    )
    forwarder = EgressForwarder(
        endpoints, allow_private=False, max_connections=4, on_refused=refused.append, resolver=resolver
    )
    try:
        forwarder.start(sandbox.network_namespace())
        out: list[str] = []
        for name in resolved:
            sandbox.exec(["sh", "-c", GET.format(name, 80)], workdir="/", on_output=out.append)
        asyncio.run(asyncio.sleep(0.2))  # the refusal is reported off the forwarding loop
    finally:
        forwarder.close()
        sandbox.remove()
    assert forwarder.carried == 0
    assert sorted(r.split(" was not made")[0] for r in refused) == [
        "Network: a connection to metadata.attacker.example:80",
        "Network: a connection to rebind.attacker.example:80",
    ]
    assert "169.254.169.254" in " ".join(refused)


@pytest.mark.parametrize(
    ("address", "private_allowed", "expected"),
    [
        ("169.254.169.254", False, False),  # AWS, GCP, Azure metadata
        ("fd00:ec2::254", False, False),  # AWS metadata over IPv6
        ("10.1.2.3", False, False),
        ("172.17.0.1", False, False),  # Docker's bridge gateway: the host's services
        ("127.0.0.1", False, False),
        ("::1", False, False),
        ("0.0.0.0", True, False),
        ("224.0.0.1", True, False),
        ("140.82.112.3", False, True),
        ("2606:4700::1111", False, True),
        ("10.1.2.3", True, True),
    ],
)
def test_which_addresses_a_connection_may_go_to(address: str, private_allowed: bool, expected: bool):
    assert permitted(address, private_allowed) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("api.anthropic.com", "api.anthropic.com:443"),
        ("Registry.NPMjs.org.", "registry.npmjs.org:443"),
        ("http://127.0.0.1:8080/v1", "127.0.0.1:8080"),
        ("http://llm.acme.dev/v1", "llm.acme.dev:80"),
        ("pypi.org:8443", "pypi.org:8443"),
    ],
)
def test_endpoints_are_named_like_urls_or_host_and_port(text: str, expected: str):
    assert str(parse_endpoint(text)) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("169.254.169.254", "name the host"),
        ("10.0.0.1:80", "name the host"),
        ("localhost:6379", "localhost is its own"),
        ("bad host", "not a host name"),
        ("pypi.org:99999", "port"),
    ],
)
def test_endpoints_that_cannot_be_forwarded_are_refused(text: str, why: str):
    with pytest.raises(ValueError, match=why):
        parse_endpoint(text)


@pytest.fixture
def alice(runner_alice: Person) -> Person:
    return runner_alice


def test_egress_is_the_default_and_bridge_needs_the_operators_consent(
    ctx: WorkerContext, alice: Person, make_env, start_run, store
):
    assert Settings().container_network == "egress"
    run_id = start_run(alice.principal, make_env(network="bridge"))
    assert run_job(ctx, run_id) == "FAILED"
    status = final(store, run_id).status_message
    assert status.error_code == "environment_setup_failed"
    assert status.message.startswith("Bridge networking is disabled on this gateway (")
    assert "cloud metadata" in status.message
