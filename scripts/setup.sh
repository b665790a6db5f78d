#!/usr/bin/env bash
# Create (or update) the project's virtualenv in .venv with everything the CLI and the tests need.
# Idempotent: a second run only checks that the install is current. No network access is needed after the
# first install (PyPI is used for it; torch and torchvision are resolved together, see docs/install.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.focalnet-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # torch + torchvision must come from the same release; do not let pip pick the CPU-only 2.13 wheel alone.
  .venv/bin/python -m pip install -q "torch>=2.4" "torchvision>=0.19"
  .venv/bin/python -m pip install -q -e ".[dev]"
  touch "$stamp"
fi
# The web-demo test drives Debian's headless Chromium; install it when we can (root, apt), else that test skips.
if ! command -v chromium >/dev/null 2>&1 && [ "${FOCALNET_NO_APT:-0}" != 1 ] && command -v apt-get >/dev/null 2>&1 \
   && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "setup: could not install chromium; the browser test will be skipped" >&2
fi
