#!/usr/bin/env bash
# The Debian packages the kit and its tests use beyond Python (README's test command runs
# this first; .ci/run too): bubblewrap is the sandbox every candidate service runs in;
# strace records a service's file-system calls for the power-loss durability check;
# iproute2 brings up loopback in a grade's network namespace; promtool (package prometheus)
# is the strict Prometheus text-format checker the metrics tests use. Installs only what
# is missing; asks for root through sudo when it is not root.
set -euo pipefail
need=()
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
command -v strace >/dev/null 2>&1 || need+=(strace)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
[ "${#need[@]}" -eq 0 ] && exit 0
as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
