#!/usr/bin/env bash
# Make sure Debian's chromium is installed for the console's browser tests (tests/console):
# Playwright drives it at /usr/bin/chromium (its own browser download cannot run here).
# Idempotent: with chromium present it changes nothing.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  exit 0
fi
echo "ensure-browser: installing Debian's chromium"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium >/dev/null
/usr/bin/chromium --version
