#!/usr/bin/env bash
# Create the compose stack's shared token file (docker/secrets/fd_token by default).
# Why a file: compose passes it as a secret mounted at /run/secrets/fd_token, so the token
# never appears in `docker inspect`, the compose file or the shell history. The directory
# is 0700 (host users cannot read it); the file is 0444 because the non-root service user
# (uid 10001) inside the container must read the bind-mounted secret.
# Idempotent: an existing token is kept unless --force is given.
set -euo pipefail
FILE="${FD_TOKEN_FILE:-$(cd "$(dirname "$0")" && pwd)/secrets/fd_token}"
if [ -s "${FILE}" ] && [ "${1:-}" != "--force" ]; then
  echo "token exists: ${FILE}" >&2
  exit 0
fi
mkdir -p "$(dirname "${FILE}")"
chmod 0700 "$(dirname "${FILE}")"
umask 077
python3 -c 'import secrets; print(secrets.token_hex(24), end="")' > "${FILE}.tmp"
chmod 0444 "${FILE}.tmp"
mv -f "${FILE}.tmp" "${FILE}"
echo "token written: ${FILE}" >&2
