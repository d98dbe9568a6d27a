#!/usr/bin/env bash
# Install what the benchmarks need (idempotent).
#   bash benchmarks/install.sh [/path/to/venv/bin/python]
# - Debian postfix, only for its smtp-sink / smtp-source binaries (the mail daemon is left stopped)
# - Debian nginx, run by the benchmarks as a plain process with their own config (service stopped)
# - PyPI peers into the venv: hubspot-api-client, pydantic>=2, hubspot-sdk[aiohttp] (pre-release),
#   py-spy / pyinstrument for profiles, uvloop for the uvloop rows. A failed hubspot-sdk install is recorded, not fatal.
set -uo pipefail
PY="${1:-/work/venv/bin/python}"
HERE="$(cd "$(dirname "$0")" && pwd)"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

need_apt=()
command -v smtp-sink >/dev/null 2>&1 || [ -x /usr/sbin/smtp-sink ] || need_apt+=(postfix)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
if [ "${#need_apt[@]}" -gt 0 ]; then
    # Keep postfix from configuring a real mail system.
    echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${need_apt[@]}" || { echo "apt-get install failed" >&2; exit 1; }
fi
# Nothing of theirs may keep running: stop the daemons a postinst may have started.
$SUDO postfix stop >/dev/null 2>&1 || true
$SUDO service postfix stop >/dev/null 2>&1 || true
$SUDO service nginx stop >/dev/null 2>&1 || true
$SUDO nginx -s quit >/dev/null 2>&1 || true

"$PY" -m pip install -q 'hubspot-api-client' 'pydantic>=2' 'py-spy' 'pyinstrument' 'uvloop' \
    || { echo "pip install of peers failed" >&2; exit 1; }
rm -f "$HERE/.hubspot_sdk_error.txt"
if ! "$PY" -m pip install -q --pre 'hubspot-sdk[aiohttp]' 2>"$HERE/.pip_err.txt"; then
    cp "$HERE/.pip_err.txt" "$HERE/.hubspot_sdk_error.txt"
    echo "hubspot-sdk unavailable (recorded in benchmarks/.hubspot_sdk_error.txt)" >&2
fi
rm -f "$HERE/.pip_err.txt"

if (exec 3<>/dev/tcp/127.0.0.1/25) 2>/dev/null; then
    echo "warning: something listens on 127.0.0.1:25" >&2
fi
echo "smtp-sink: $(command -v smtp-sink || echo /usr/sbin/smtp-sink)"
echo "nginx: $(command -v nginx || echo /usr/sbin/nginx)"
"$PY" -m pip list 2>/dev/null | grep -iE '^(hubspot|pydantic |aiohttp |aiosmtplib|msgspec|httpx )'
