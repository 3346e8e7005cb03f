"""Several gateway hosts on one machine: each a network namespace with a Docker engine of its
own (its own ``--data-root``, ``--exec-root``, socket and pidfile) and its own gateway
processes, all sharing one Redis and one PostgreSQL, as a team that outgrew one machine runs it.

The shared services (Redis, PostgreSQL, the fake Slack, Linear and GitHub, the chaos agent's
start counter) listen on a *service address* added to this machine's loopback interface.
Each host reaches it over its own veth link, whose only route leads there: a host has no
default route, so nothing it runs can leave the machine, and the hosts cannot reach each other
except through what the service address offers.  The tests' own HTTP clients stand in for the
load balancer in front of the web processes.

Processes enter their host's network namespace with ``nsenter --net`` and nothing else: they
keep this machine's mount namespace, so the filesystems a worker loop-mounts for a run are the
ones its host's Docker engine bind-mounts into the container.  ``ip netns exec`` would give
each process a mount namespace of its own.

Powering a host off kills every process in its namespace and below it (engine, containerd,
shims, containers on the host network, gateway processes); booting it again clears what a real
reboot clears (its mounts, the engine's exec root and pidfile) and starts its engine, whose
containers come back stopped.  Run as a script, it sets the hosts up, prints where each is, and
waits for Ctrl-C to tear them down: ``python -m tests.hosts``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import docker
import requests

from runner.disk import mounts_under
from tests.cluster import ROOT, Cluster
from tests.images import busybox_image
from tests.support.processes import descendants

PLACEMENT: dict[str, int] = {
    "web-1": 1,
    "worker-1": 1,
    "reporter-1": 1,
    "scheduler": 1,
    "web-2": 2,
    "worker-2": 2,
    "reporter-2": 2,
    "worker-3": 3,
}
"""Which host runs each process: two web processes and two reporters on hosts 1 and 2, one
scheduler (it sweeps while another host is down), a worker on every host."""


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, timeout=30)


class HostNetwork:
    """The service address on this machine's loopback, and one veth link per host to it."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:5]
        taken = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True).stdout
        octet = next(n for n in random.sample(range(1, 255), 254) if f"10.231.{n}." not in taken)
        self.prefix = f"10.231.{octet}"
        self.service_address = f"{self.prefix}.1"
        self.namespaces: list[str] = []

    def up(self) -> None:
        _ip("addr", "add", f"{self.service_address}/32", "dev", "lo")

    def add_host(self, index: int) -> tuple[str, str]:
        """A namespace linked to the service address; returns its name and the host's address."""
        netns, link, address = f"ozh-{self.tag}-{index}", f"ozh{self.tag}{index}", f"{self.prefix}.{10 + index}"
        _ip("netns", "add", netns)
        self.namespaces.append(netns)
        _ip("link", "add", link, "type", "veth", "peer", "name", f"{link}p")
        _ip("link", "set", f"{link}p", "netns", netns)
        _ip("link", "set", link, "up")
        _ip("route", "add", f"{address}/32", "dev", link)
        _ip("-n", netns, "link", "set", "lo", "up")
        _ip("-n", netns, "link", "set", f"{link}p", "name", "eth0")
        _ip("-n", netns, "addr", "add", f"{address}/32", "dev", "eth0")
        _ip("-n", netns, "link", "set", "eth0", "up")
        _ip("-n", netns, "route", "add", f"{self.service_address}/32", "dev", "eth0")
        return netns, address

    def down(self) -> None:
        for netns in self.namespaces:  # deleting a namespace deletes its end of the link, and so both
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("netns", "del", netns)
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("addr", "del", f"{self.service_address}/32", "dev", "lo")


@dataclass
class SimulatedHost:
    name: str
    netns: str
    address: str
    root: Path
    """Everything of the host's own: its engine's data and exec roots, socket, work directory."""
    engine: subprocess.Popen | None = None
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def docker_host(self) -> str:
        return f"unix://{self.root / 'docker.sock'}"

    @property
    def work_dir(self) -> Path:
        return self.root / "work"

    @property
    def env(self) -> dict[str, str]:
        """What a gateway process on this host is told about it."""
        return {"DOCKER_HOST": self.docker_host, "OZGW_HOST_NAME": self.name, "OZGW_WORK_DIR": str(self.work_dir)}

    @property
    def up(self) -> bool:
        return self.engine is not None and self.engine.poll() is None

    def spawn(self, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        """``argv`` inside the host's network namespace (and only that: see the module's docstring)."""
        with open(log, "ab") as out:
            process = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{self.netns}", "--", *argv],
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def boot(self) -> None:
        """Start the host's Docker engine, after clearing what a reboot clears."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._unmount_all()
        shutil.rmtree(self.root / "exec", ignore_errors=True)
        (self.root / "docker.pid").unlink(missing_ok=True)
        argv = ["dockerd", "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec")]
        argv += ["--pidfile", str(self.root / "docker.pid"), "--host", self.docker_host]
        argv += ["--bridge=none", "--iptables=false", "--ip-masq=false"]
        self.engine = self.spawn(argv, dict(os.environ), self.root / "dockerd.log")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(docker.errors.DockerException, requests.RequestException):
                if self.client().ping():
                    return
            if self.engine.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"{self.name}'s Docker engine did not start: {self.log_tail('dockerd')}")

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.docker_host, timeout=60)

    def pids(self) -> set[int]:
        """Every process of the host: those in its network namespace, and what they started
        (a container with a network namespace of its own is below its shim)."""
        listed = subprocess.run(["ip", "netns", "pids", self.netns], capture_output=True, text=True).stdout
        pids = {int(p) for p in listed.split()}
        return pids | descendants(*pids)

    def power_off(self) -> None:
        """Pull the plug: ``kill -9`` everything of the host at once, without a goodbye."""
        deadline = time.monotonic() + 30
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        for process in self.processes:  # reaped, so no pid of theirs lingers as a zombie
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)
        self.processes.clear()
        self.engine = None

    def destroy(self) -> None:
        self.power_off()
        self._unmount_all()
        shutil.rmtree(self.root, ignore_errors=True)

    def _unmount_all(self) -> None:
        for point in mounts_under(self.root):
            subprocess.run(["umount", "-l", str(point)], capture_output=True, timeout=30)

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""


class HostCluster(Cluster):
    """:class:`tests.cluster.Cluster` spread over three simulated hosts (:data:`PLACEMENT`)."""

    def __init__(self, root: Path, image: str, hosts: int = 3, workers_per_host: int = 1) -> None:
        self.network = HostNetwork()
        self.network.up()  # the shared services bind to its address as they are made
        try:
            super().__init__(root, image, address=self.network.service_address)
        except BaseException:
            self.network.down()
            raise
        # Short paths: containerd's sockets live under each engine's exec root.
        self.hosts_root = Path(tempfile.mkdtemp(prefix="ozh-"))
        self.hosts = [
            SimulatedHost(
                f"host-{n}",
                f"ozh-{self.network.tag}-{n}",
                f"{self.network.prefix}.{10 + n}",
                self.hosts_root / f"host-{n}",
            )
            for n in range(1, hosts + 1)
        ]
        self.placement = {name: n for name, n in PLACEMENT.items() if n <= hosts}
        for n in range(1, hosts + 1):  # more worker processes on each host's engine
            self.placement |= {f"worker-{n}.{k}": n for k in range(2, workers_per_host + 1)}
        self.env.update(OZGW_CONTAINER_NETWORK="host", OZGW_ALLOW_HOST_NETWORK="true", OZGW_QUEUE_NAME="hosts")
        self._next_web = itertools.count()

    def host(self, name: str) -> SimulatedHost:
        return next(h for h in self.hosts if h.name == name)

    def host_of(self, process: str) -> SimulatedHost:
        return self.hosts[self.placement[process] - 1]

    @property
    def webs(self) -> list[str]:
        """Every web process's base URL (whether its host is up or not)."""
        return [self._web_url(p) for p in self.placement if p.startswith("web-")]

    def _web_url(self, process: str) -> str:
        return f"http://{self.host_of(process).address}:{self.port}"

    def _live_webs(self) -> list[str]:
        return [p for p in self.placement if p.startswith("web-") and self.host_of(p).up]

    @property
    def url(self) -> str:
        """The next live web process, round robin: the load balancer in front of them."""
        live = self._live_webs()
        return self._web_url(live[next(self._next_web) % len(live)])

    def start(self) -> None:
        for host in self.hosts:
            self.network.add_host(int(host.name.rsplit("-", 1)[1]))
            host.boot()
            busybox_image(host.client())
        self.start_services()
        for name in self.placement:
            self.launch(name)
        self.wait_healthy()

    def launch(self, name: str) -> None:
        host = self.host_of(name)
        role = name.split("-")[0]
        command = ["serve", "--host", host.address, "--port", str(self.port)] if role == "web" else [role]
        self.processes[name] = host.spawn(
            [sys.executable, "-m", "cli", *command], {**self.env, **host.env}, self.root / f"{name}.log"
        )

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        for web in self._live_webs():
            url = f"{self._web_url(web)}/healthz"
            while True:
                with contextlib.suppress(requests.RequestException):
                    if requests.get(url, timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{web} never became healthy: {self.log_tail(web)}")
                time.sleep(0.2)

    def boot(self, host: SimulatedHost) -> None:
        """The host comes back: its engine, then its gateway processes (whose start-up sweeps run)."""
        host.boot()
        for name, n in self.placement.items():
            if self.hosts[n - 1] is host:
                self.launch(name)
        self.wait_healthy()

    def stop(self) -> None:
        try:
            for host in self.hosts:
                host.destroy()
            self.processes.clear()
            super().stop()
        finally:
            self.network.down()
            shutil.rmtree(self.hosts_root, ignore_errors=True)


def main() -> None:
    """Set up three hosts with the test image, print where they are, tear down on Ctrl-C."""
    root = Path(tempfile.mkdtemp(prefix="ozh-cluster-"))
    cluster = HostCluster(root, busybox_image(docker.from_env()))
    try:
        cluster.start()
        print(f"web: {' '.join(cluster.webs)}   logs: {root}")
        print(f"database: {cluster.pg.url}   redis: {cluster.redis.url}")
        for host in cluster.hosts:
            print(f"{host.name}: {host.address}  DOCKER_HOST={host.docker_host}  netns {host.netns}")
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
