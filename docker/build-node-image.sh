#!/usr/bin/env bash
# Build the local Node.js base image faultdrill/node-base:bookworm from Debian packages
# (Debian bookworm's nodejs, 18.x). Why: these machines have no image registry, so
# `FROM node:20-slim` cannot be pulled. The grader passes this image as
# `--build-arg BASE_IMAGE=...` to submissions whose manifest says `[docker] base = "node"`
# (SPEC §3). Idempotent: if the image already exists nothing is done (--force rebuilds).
#
# Usage: docker/build-node-image.sh [--force]
# Env:   FD_NODE_BASE_IMAGE  image name (default faultdrill/node-base:bookworm)
#        FD_DEBIAN_MIRROR    mirror (default: the host's apt source, else debootstrap's)
set -euo pipefail
# shellcheck source=lib/debian-image.sh
. "$(dirname "$0")/lib/debian-image.sh"
LOG_TAG=build-node-image
FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1

# The modules a protocol service needs (net, http, crypto for TLS, fs) must load.
build_debian_image "${FD_NODE_BASE_IMAGE:-faultdrill/node-base:bookworm}" "${FORCE}" \
  "" "nodejs ca-certificates" \
  "node -e 'for (const m of [\"net\",\"http\",\"tls\",\"crypto\",\"fs\",\"readline\"]) require(m); if (parseInt(process.versions.node) < 18) process.exit(1)'" \
  '["node"]' NODE_ENV=production
