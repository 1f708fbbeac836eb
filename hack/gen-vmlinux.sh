#!/usr/bin/env bash
# Regenerates internal/agent/bpf/c/vmlinux.h from the running kernel's BTF.
# Needs bpftool (hack/install-bpf-tools.sh). The sampler uses only stable UAPI types
# from it (integer types, enum bpf_map_type, BPF_F_* flags, struct bpf_perf_event_data),
# so a header dumped on any amd64 kernel >= 5.x serves every bpfel/bpfeb target; run this
# only when the C code starts to read kernel structs (CO-RE) that need newer types.
#   Usage: hack/gen-vmlinux.sh [BTF_FILE]   (default /sys/kernel/btf/vmlinux)
set -euo pipefail
cd "$(dirname "$0")/.."
BTF="${1:-/sys/kernel/btf/vmlinux}"
OUT=internal/agent/bpf/c/vmlinux.h
command -v bpftool >/dev/null || { echo "gen-vmlinux: bpftool not found; run hack/install-bpf-tools.sh" >&2; exit 1; }
[[ -r $BTF ]] || { echo "gen-vmlinux: $BTF not readable (kernel built without CONFIG_DEBUG_INFO_BTF?)" >&2; exit 1; }
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
bpftool btf dump file "$BTF" format c >"$tmp"
chmod 0644 "$tmp"
mv "$tmp" "$OUT"
trap - EXIT
echo "gen-vmlinux: wrote $OUT ($(wc -c <"$OUT") bytes) from $BTF" >&2
