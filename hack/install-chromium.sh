#!/usr/bin/env bash
# Installs Chromium (Debian package chromium), the browser the web UI's tests
# (internal/ui) drive headless with chromedp. Prints the browser's path on stdout.
# As root, Chromium runs only with --no-sandbox; the tests pass it.
set -euo pipefail
if ! dpkg -s chromium >/dev/null 2>&1; then
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  echo "install-chromium: apt-get install chromium" >&2
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends chromium >&2
else
  echo "install-chromium: chromium already installed" >&2
fi
command -v chromium
