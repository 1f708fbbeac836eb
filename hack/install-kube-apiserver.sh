#!/usr/bin/env bash
# Builds kube-apiserver from the Go module proxy (k8s.io/kubernetes is not meant to be
# imported: its go.mod replaces every staging module with a local path, so we rewrite
# those replaces to the published k8s.io/X versions). Cached under $KPROF_CACHE.
set -euo pipefail
K8S_VERSION="${K8S_VERSION:-1.36.3}"
CACHE="${KPROF_CACHE:-$HOME/.cache/kprof}"
BIN_DIR="$CACHE/k8s/$K8S_VERSION"
if [[ -x "$BIN_DIR/kube-apiserver" ]]; then
  echo "$BIN_DIR"
  exit 0
fi
mkdir -p "$BIN_DIR"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
STAGING_VERSION="v0.${K8S_VERSION#1.}"
cd "$WORK"
cat > go.mod <<MOD
module kprof.local/apiserverbuild

go 1.26
MOD
echo 'package main' > main.go
# Fetch the kubernetes go.mod to learn the list of staging modules.
GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@v${K8S_VERSION}" > dl.json
K8S_MOD="$(sed -n 's/.*"GoMod": "\(.*\)".*/\1/p' dl.json)"
{
  echo "require k8s.io/kubernetes v${K8S_VERSION}"
  echo "replace ("
  grep -E '^\s*k8s.io/[a-z0-9-]+ => \./staging/src/k8s.io/' "$K8S_MOD" \
    | awk -v v="$STAGING_VERSION" '{print "\t" $1 " => " $1 " " v}'
  echo ")"
} >> go.mod
cat > tools.go <<'GO'
//go:build tools

package main

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
go mod tidy >&2
CGO_ENABLED=0 go build -o "$BIN_DIR/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver >&2
echo "$BIN_DIR"
