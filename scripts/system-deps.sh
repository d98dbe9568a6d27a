#!/usr/bin/env bash
# The Debian packages the test suite needs and installs itself when missing:
#   chromium      the web inbox's browser tests (Playwright drives /usr/bin/chromium)
#   redis-server  the distributed relay's tests (each test starts and stops its own)
#   curl, jq      the shell sessions of README.md, which the tests run (conftest.py)
# The tests fail, never skip, without them (unless HUBSPOT_TX_SKIP_BROWSER=1 /
# HUBSPOT_TX_ALLOW_SKIP_REDIS=1 says so).
set -euo pipefail
missing=()
if [ ! -x /usr/bin/chromium ] && [ "${HUBSPOT_TX_SKIP_BROWSER:-}" != 1 ]; then missing+=(chromium); fi
if ! command -v redis-server >/dev/null 2>&1; then missing+=(redis-server); fi
for tool in curl jq; do
  if ! command -v "$tool" >/dev/null 2>&1; then missing+=("$tool"); fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "the tests need: ${missing[*]} (apt-get install them as root)" >&2
    exit 1
  fi
  sudo="sudo"
fi
echo "== apt-get install ${missing[*]}"
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
