#!/usr/bin/env bash
# Installs what tests/test_browser.py needs on a fresh Debian machine: Debian's own
# headless Chromium and Playwright's Python package (the driver only).
#
# Why not `playwright install`: it downloads browser builds from outside the package
# registries, which this project's machines cannot reach; Debian's chromium is driven
# through executable_path instead. Idempotent: does nothing that is already done.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1

if ! command -v chromium >/dev/null 2>&1; then
  apt-get update -qq
  # fonts-liberation: readable text in screenshots (chromium's own font fallback is thin).
  apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
fi
if ! python3 -c 'import playwright.sync_api' >/dev/null 2>&1; then
  python3 -m pip install -q playwright
fi
chromium --version
python3 -c 'import importlib.metadata as m; print("playwright", m.version("playwright"))'
