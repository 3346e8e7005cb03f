"""The compose file works as written: shared keys required everywhere, one work directory at
the same path inside and outside the worker, every Procfile process, a non-root image.  (The
images cannot be pulled here, so the file is checked, not run.)"""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "manifests" / "docker-compose.yml").read_text())
GATEWAY = {name: s for name, s in COMPOSE["services"].items() if s.get("image") == "oz-gateway"}


def test_every_gateway_process_must_be_given_the_shared_keys():
    for name, service in GATEWAY.items():
        env = service["environment"]
        for key in ("OZGW_SECRET_KEY", "OZGW_ENCRYPTION_KEYS"):
            assert env[key].startswith(f"${{{key}:?"), f"{name} would generate its own {key}"


def test_every_procfile_process_runs():
    procfile = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    commands = {" ".join(s["command"]) for s in GATEWAY.values()}
    assert set(procfile.values()) <= commands


def test_workspaces_have_one_path_on_the_host_and_in_the_worker():
    worker = GATEWAY["worker"]
    work_dir = worker["environment"]["OZGW_WORK_DIR"]
    binds = [v for v in worker["volumes"] if isinstance(v, dict)]
    assert [(b["source"], b["target"]) for b in binds] == [(work_dir, work_dir)]
    # the worker mounts each run's filesystem there; the host's engine must see those mounts
    assert binds[0]["bind"]["propagation"] == "rshared"
    assert "/var/run/docker.sock:/var/run/docker.sock" in worker["volumes"]
    dockerfile = (ROOT / "manifests" / "Dockerfile").read_text()
    assert "e2fsprogs" in dockerfile and " mount " in dockerfile


def test_the_image_runs_as_a_user_and_only_the_worker_as_root():
    dockerfile = (ROOT / "manifests" / "Dockerfile").read_text().splitlines()
    users = [line.split()[1] for line in dockerfile if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert any("git" in line for line in dockerfile if "apt-get install" in line)
    assert [name for name, s in GATEWAY.items() if s.get("user") in ("root", "0")] == ["worker"]


def test_only_the_worker_may_enter_namespaces_and_mount():
    """Egress forwarding listens inside each run container's namespace (runner/egress.py);
    workspaces are loop-mounted filesystems (runner/disk.py)."""
    worker = GATEWAY["worker"]
    assert worker.get("pid") == "host" and worker.get("privileged") is True
    others = [name for name, s in GATEWAY.items() if name != "worker"]
    assert all("pid" not in GATEWAY[n] and not GATEWAY[n].get("privileged") for n in others)
    assert "OZGW_CONTAINER_NETWORK" not in worker["environment"] or worker["environment"]["OZGW_CONTAINER_NETWORK"] in (
        "egress",
        "none",
    )


def test_two_web_processes_and_two_workers_share_one_store_and_one_redis():
    """The scale-out shape (README, "More than one host"): two web processes each on a port of its own,
    two workers naming the one machine whose engine they share, one reporter, one scheduler."""
    web, worker = GATEWAY["web"], GATEWAY["worker"]
    assert web["deploy"]["replicas"] == 2 and worker["deploy"]["replicas"] == 2
    published = web["ports"][0].split(":")[0]
    first, last = (int(p) for p in published.split("-"))
    assert last - first + 1 == web["deploy"]["replicas"]
    assert worker["environment"]["OZGW_HOST_NAME"].startswith("${OZGW_HOST_NAME:-")
    assert {"reporter", "scheduler"} <= set(GATEWAY)
    stores = {(s["environment"]["OZGW_DATABASE_URL"], s["environment"]["OZGW_REDIS_URL"]) for s in GATEWAY.values()}
    assert len(stores) == 1
