#!/usr/bin/env bash
# Installs the peers the node agent's fidelity tests (internal/agent/collector) and
# overhead benchmark (bench/agent) compare against: perf (linux-perf) and bpftrace.
set -euo pipefail
pkgs=(linux-perf bpftrace)
missing=()
for pkg in "${pkgs[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
((${#missing[@]})) || { echo "install-perf: ${pkgs[*]} already installed" >&2; exit 0; }
if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
echo "install-perf: apt-get install ${missing[*]}" >&2
$SUDO apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >&2
