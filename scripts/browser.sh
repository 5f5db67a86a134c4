#!/usr/bin/env bash
# Installs what the dashboard's browser tests need: Debian's `chromium` (apt-get, when run as
# root on Debian and it is missing) and `playwright-core` from npm (`npm ci` in web/tests, from
# its package-lock). Playwright drives the system browser at /usr/bin/chromium; it never
# downloads a browser of its own.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! [ -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing chromium" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
  else
    echo "error: /usr/bin/chromium is missing (as root: apt-get install chromium)" >&2
    exit 1
  fi
fi

if ! command -v npm >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing npm" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  else
    echo "error: node and npm are missing (as root: apt-get install nodejs npm)" >&2
    exit 1
  fi
fi

# Reinstall only when the lock file changed since the last install.
stamp=web/tests/node_modules/.kai-lock.sha256
want=$(sha256sum web/tests/package-lock.json | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "installing playwright-core (npm ci)" >&2
  (cd web/tests && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" >"$stamp"
fi
