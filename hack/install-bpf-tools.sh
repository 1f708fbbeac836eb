#!/usr/bin/env bash
# Installs what regenerating the BPF sampler needs (go generate ./internal/agent/bpf/,
# hack/gen-vmlinux.sh): clang + llvm-strip (bpf2go), libbpf headers (bpf_helpers.h) and
# bpftool. Not needed to build or test kprof: the generated .go and .o files are committed.
set -euo pipefail
pkgs=(clang llvm libbpf-dev bpftool)
missing=()
for pkg in "${pkgs[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
((${#missing[@]})) || { echo "install-bpf-tools: ${pkgs[*]} already installed" >&2; exit 0; }
if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
echo "install-bpf-tools: apt-get install ${missing[*]}" >&2
$SUDO apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >&2
