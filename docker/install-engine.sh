#!/usr/bin/env bash
# Install a Docker engine from Debian's own packages (docker.io, docker-compose) and make
# sure dockerd is running. Why: these machines have no registry and no systemd, so the
# engine is started by hand; every step is idempotent and every wait is bounded so CI can
# run this script on every build.
#
# Usage: docker/install-engine.sh              (needs root; re-running is harmless)
#        docker/install-engine.sh --start-only (never installs: only starts dockerd)
# Env:   FD_DOCKERD_WAIT   seconds to wait for the daemon socket (default 60)
#        FD_DOCKERD_LOG    dockerd log file (default /var/log/faultdrill-dockerd.log)
set -euo pipefail

WAIT="${FD_DOCKERD_WAIT:-60}"
LOG="${FD_DOCKERD_LOG:-/var/log/faultdrill-dockerd.log}"
SOCK=/var/run/docker.sock
export DOCKER_HOST="unix://${SOCK}"

log() { printf '[install-engine] %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
  log "must run as root (installs packages and starts dockerd)"
  exit 2
fi

START_ONLY=0
[ "${1:-}" = "--start-only" ] && START_ONLY=1

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
if [ "${START_ONLY}" = 1 ]; then
  command -v dockerd >/dev/null 2>&1 || { log "dockerd is not installed (--start-only)"; exit 1; }
elif [ "${#need[@]}" -gt 0 ]; then
  log "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  timeout 600 apt-get -o DPkg::Lock::Timeout=300 update -qq
  timeout 900 apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${need[@]}" iptables >/dev/null
else
  log "packages already installed"
fi

daemon_up() { timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if daemon_up; then
  log "dockerd already running: $(timeout 10 docker version --format '{{.Server.Version}}')"
  exit 0
fi

# A stale pid file from a dead daemon stops dockerd from starting.
if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
  rm -f /var/run/docker.pid
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
  log "starting dockerd (log: ${LOG})"
  # Debian's containerd is started by dockerd itself when no system containerd runs.
  nohup dockerd --host "unix://${SOCK}" >"${LOG}" 2>&1 &
fi

deadline=$(( $(date +%s) + WAIT ))
until daemon_up; do
  if [ "$(date +%s)" -ge "${deadline}" ]; then
    log "dockerd did not answer within ${WAIT}s; last log lines:"
    tail -n 30 "${LOG}" >&2 || true
    exit 1
  fi
  sleep 1
done
log "dockerd up: $(timeout 10 docker version --format '{{.Server.Version}}')"
