#!/usr/bin/env bash
# Build the local base image faultdrill/python-base:bookworm from Debian packages.
# Why: these machines have no image registry, so `FROM python:3.11-slim` cannot be pulled.
# debootstrap --variant=minbase gives a tiny Debian root (with /bin/sh), python3 is
# installed into it, and the tree is imported as an image. Idempotent: if the image
# already exists nothing is done (pass --force to rebuild). Every step has a time bound.
#
# Usage: docker/build-base-image.sh [--force]
# Env:   FD_BASE_IMAGE  image name (default faultdrill/python-base:bookworm)
#        FD_DEBIAN_MIRROR  mirror (default http://deb.debian.org/debian)
set -euo pipefail

IMAGE="${FD_BASE_IMAGE:-faultdrill/python-base:bookworm}"
MIRROR="${FD_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
export DOCKER_HOST="${DOCKER_HOST:-unix:///var/run/docker.sock}"
FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1

log() { printf '[build-base-image] %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
  log "must run as root (debootstrap needs it)"
  exit 2
fi
if ! timeout 10 docker version >/dev/null 2>&1; then
  log "no Docker engine answers on ${DOCKER_HOST}; run docker/install-engine.sh first"
  exit 1
fi
if [ "${FORCE}" = 0 ] && timeout 10 docker image inspect "${IMAGE}" >/dev/null 2>&1; then
  log "${IMAGE} already exists; nothing to do (use --force to rebuild)"
  exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  log "installing debootstrap"
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get -o DPkg::Lock::Timeout=300 install -y -qq debootstrap >/dev/null
fi

ROOT="$(mktemp -d /var/tmp/faultdrill-rootfs.XXXXXX)"
cleanup() {
  # Unmount anything debootstrap/chroot may have left mounted before deleting the tree.
  for m in proc sys dev/pts dev; do umount -l "${ROOT}/${m}" 2>/dev/null || true; done
  rm -rf --one-file-system "${ROOT}"
}
trap cleanup EXIT

log "debootstrap bookworm into ${ROOT}"
timeout 900 debootstrap --variant=minbase --include=python3-minimal bookworm "${ROOT}" "${MIRROR}" >/tmp/faultdrill-debootstrap.log 2>&1 \
  || { tail -n 30 /tmp/faultdrill-debootstrap.log >&2; exit 1; }

log "installing python3 (full stdlib) inside the root"
# python3-minimal lacks most of the stdlib (logging, http, urllib, ssl live in
# libpython3.11-stdlib, which python3 pulls in).
timeout 900 chroot "${ROOT}" /usr/bin/env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends python3 ca-certificates >/dev/null
timeout 300 chroot "${ROOT}" apt-get clean
rm -rf "${ROOT}"/var/lib/apt/lists/* "${ROOT}"/var/cache/apt/*.bin "${ROOT}"/tmp/* \
       "${ROOT}"/usr/share/doc/* "${ROOT}"/usr/share/man/* "${ROOT}"/usr/share/locale/*
# Fail here, not in a container later, if the stdlib the reference needs is incomplete.
chroot "${ROOT}" python3 -c 'import json, logging, urllib.request, http.server, ssl, hmac, tomllib, ctypes'

log "importing as ${IMAGE}"
tar -C "${ROOT}" -c . | timeout 600 docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PYTHONDONTWRITEBYTECODE=1' \
  --change 'CMD ["python3"]' \
  --change 'LABEL faultdrill.base=1' \
  - "${IMAGE}" >/dev/null
log "done: $(docker image inspect --format '{{.Id}} {{.Size}}' "${IMAGE}")"
