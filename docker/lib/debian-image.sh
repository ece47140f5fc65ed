# Shared by docker/build-base-image.sh and docker/build-node-image.sh (sourced, not run):
# build a local base image from Debian packages, for machines with no image registry.
#
# debootstrap --variant=minbase gives a tiny Debian root (with /bin/sh), the language's
# packages are installed into it with apt, a check command proves the runtime works, and
# the tree is imported with `docker import`. Idempotent: an existing image is kept unless
# --force. Every step has a time bound; the temporary root is removed even on failure.
#
# build_debian_image IMAGE FORCE INCLUDE INSTALL CHECK CMD_JSON [ENV=VALUE ...]
#   IMAGE     the tag to create (e.g. faultdrill/node-base:bookworm)
#   FORCE     1 to rebuild an existing image
#   INCLUDE   comma-separated packages debootstrap installs (may be empty)
#   INSTALL   space-separated packages apt installs inside the root afterwards
#   CHECK     a shell command run in the root (chroot) that must succeed
#   CMD_JSON  the image's default CMD, JSON array form
#   ENV=VALUE extra ENV lines for the image
# Env: FD_DEBIAN_MIRROR (default: the host's own apt source for the suite, else
#      debootstrap's default mirror), FD_DEBIAN_SUITE (bookworm),
#      DOCKER_HOST (default unix:///var/run/docker.sock)

log() { printf '[%s] %s\n' "${LOG_TAG:-debian-image}" "$*" >&2; }

# The archive this machine's apt already uses for SUITE (a local mirror or proxy is
# what works where the internet does not): deb822 .sources files first, then
# sources.list lines. Prints nothing when none is configured.
host_apt_mirror() {
  local suite="$1" f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    awk -v suite="$suite" '
      /^[[:space:]]*$/ { if (uri != "" && hit && deb) { print uri; exit } uri=""; hit=0; deb=0; next }
      /^URIs:/    { uri=$2 }
      /^Types:/   { for (i = 2; i <= NF; i++) if ($i == "deb") deb=1 }
      /^Suites:/  { for (i = 2; i <= NF; i++) if ($i == suite) hit=1 }
      END { if (uri != "" && hit && deb) print uri }' "$f" | head -n 1 | grep . && return 0
  done
  [ -r /etc/apt/sources.list ] && awk -v suite="$suite" \
    '$1 == "deb" { u = ($2 ~ /^\[/) ? $3 : $2; s = ($2 ~ /^\[/) ? $4 : $3; if (s == suite) { print u; exit } }' \
    /etc/apt/sources.list | grep . && return 0
  return 0
}

build_debian_image() {
  local image="$1" force="$2" include="$3" install="$4" check="$5" cmd_json="$6"
  shift 6
  local suite="${FD_DEBIAN_SUITE:-bookworm}"
  local mirror="${FD_DEBIAN_MIRROR:-$(host_apt_mirror "${suite}")}"
  export DOCKER_HOST="${DOCKER_HOST:-unix:///var/run/docker.sock}"

  if [ "$(id -u)" != 0 ]; then
    log "must run as root (debootstrap needs it)"
    return 2
  fi
  if ! timeout 10 docker version >/dev/null 2>&1; then
    log "no Docker engine answers on ${DOCKER_HOST}; run docker/install-engine.sh first"
    return 1
  fi
  if [ "${force}" != 1 ] && timeout 10 docker image inspect "${image}" >/dev/null 2>&1; then
    log "${image} already exists; nothing to do (use --force to rebuild)"
    return 0
  fi
  if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get -o DPkg::Lock::Timeout=300 install -y -qq debootstrap >/dev/null
  fi

  ROOT="$(mktemp -d /var/tmp/faultdrill-rootfs.XXXXXX)"
  DEBOOTSTRAP_LOG="$(mktemp /tmp/faultdrill-debootstrap.XXXXXX.log)"
  _debian_image_cleanup() {
    # Unmount anything debootstrap/chroot may have left mounted before deleting the tree.
    for m in proc sys dev/pts dev; do umount -l "${ROOT}/${m}" 2>/dev/null || true; done
    rm -rf --one-file-system "${ROOT}"
    rm -f "${DEBOOTSTRAP_LOG}"
  }
  trap _debian_image_cleanup EXIT

  log "debootstrap ${suite} into ${ROOT} from ${mirror:-the default mirror of debootstrap}"
  # shellcheck disable=SC2086  # an empty mirror means debootstrap's own default
  timeout 900 debootstrap --variant=minbase ${include:+--include="${include}"} "${suite}" "${ROOT}" ${mirror:+"${mirror}"} \
      >"${DEBOOTSTRAP_LOG}" 2>&1 \
    || { tail -n 30 "${DEBOOTSTRAP_LOG}" >&2; return 1; }

  if [ -n "${install}" ]; then
    log "installing ${install} inside the root"
    # shellcheck disable=SC2086  # a word list on purpose
    timeout 900 chroot "${ROOT}" /usr/bin/env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends ${install} >/dev/null
  fi
  timeout 300 chroot "${ROOT}" apt-get clean
  rm -rf "${ROOT}"/var/lib/apt/lists/* "${ROOT}"/var/cache/apt/*.bin "${ROOT}"/tmp/* \
         "${ROOT}"/usr/share/doc/* "${ROOT}"/usr/share/man/* "${ROOT}"/usr/share/locale/*
  # Fail here, not in a container later, if the runtime is incomplete.
  timeout 120 chroot "${ROOT}" /bin/sh -c "${check}" \
    || { log "the check failed in the new root: ${check}"; return 1; }

  local changes=(--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
                 --change 'ENV LANG=C.UTF-8')
  local kv
  for kv in "$@"; do changes+=(--change "ENV ${kv}"); done
  changes+=(--change "CMD ${cmd_json}" --change 'LABEL faultdrill.base=1')
  log "importing as ${image}"
  tar -C "${ROOT}" -c . | timeout 600 docker import "${changes[@]}" - "${image}" >/dev/null
  log "done: $(docker image inspect --format '{{.Id}} {{.Size}}' "${image}")"
}
