# Shared by scripts/test, scripts/up and .ci/run: install what the project needs and start
# the services its tests use, but only when they are not already there.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
APT_UPDATED=""

log() { printf '[oz-gateway] %s\n' "$*" >&2; }

apt_install() {
  if [ "$(id -u)" != 0 ]; then log "need root to install: $*"; return 1; fi
  if [ -z "$APT_UPDATED" ]; then apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_venv() {
  local extra="${1:-}"
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtualenv in .venv"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
  fi
  log "installing oz-gateway${extra:+ [$extra]}"
  "$VENV/bin/pip" install -q -e "$ROOT${extra:+[$extra]}"
}

wait_until() {  # wait_until SECONDS command...
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then return 1; fi
    sleep 0.5
  done
}

ensure_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then return; fi
  command -v redis-server >/dev/null || apt_install redis-server redis-tools
  log "starting Redis on 127.0.0.1:6379"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_until 20 redis-cli -h 127.0.0.1 -p 6379 ping || { log "Redis did not start"; return 1; }
}

pg_ok() { psql -h 127.0.0.1 -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1; }

ensure_postgres() {
  if ! pg_ok; then
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then apt_install postgresql; fi
    local version; version="$(ls /etc/postgresql | sort -V | tail -n1)"
    log "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    if ! wait_until 30 pg_isready -h 127.0.0.1 -p 5432; then log "PostgreSQL did not start"; return 1; fi
    if ! pg_ok; then  # a fresh install: allow local trust auth as on the reference machine
      local hba="/etc/postgresql/$version/main/pg_hba.conf"
      sed -i -E 's/^(host\s+all\s+all\s+127\.0\.0\.1\/32\s+)\S+/\1trust/; s/^(local\s+all\s+postgres\s+)\S+/\1trust/' "$hba"
      pg_ctlcluster --skip-systemctl-redirect "$version" main reload
      wait_until 10 pg_ok || { log "cannot log in to PostgreSQL as postgres"; return 1; }
    fi
  fi
  if [ "$(psql -h 127.0.0.1 -U postgres -d postgres -tAc "select 1 from pg_database where datname='test'")" != 1 ]; then
    createdb -h 127.0.0.1 -U postgres test
  fi
}

ensure_docker() {
  if docker info >/dev/null 2>&1; then return; fi
  command -v dockerd >/dev/null || apt_install docker.io
  log "starting the Docker engine"
  nohup dockerd --bridge=none --iptables=false --ip-masq=false >/var/log/dockerd-oz.log 2>&1 &
  wait_until 60 docker info || { log "the Docker engine did not start (see /var/log/dockerd-oz.log)"; return 1; }
}

ensure_test_tools() {  # what the tests build their local images from
  [ -x /bin/busybox ] || apt_install busybox-static
  command -v git >/dev/null || apt_install git
  command -v debootstrap >/dev/null || apt_install debootstrap
  command -v mkfs.ext4 >/dev/null || apt_install e2fsprogs  # each run's workspace filesystem
  command -v ip >/dev/null || apt_install iproute2  # the simulated hosts' namespaces and links (tests/hosts.py)
  command -v nsenter >/dev/null || apt_install util-linux
  command -v npm >/dev/null || apt_install nodejs npm
  command -v chromium >/dev/null || apt_install chromium  # the console's browser tests (Playwright drives it)
}

ensure_agent_image() {  # the real agent CLIs' image (debootstrap + npm; built once per recipe)
  local out
  if ! out="$("$VENV/bin/python" -m tests.agent_image 2>&1)"; then
    printf '%s\n' "$out" >&2
    log "building the agent image failed"
    return 1
  fi
  log "agent image: ${out##*$'\n'}"
}
