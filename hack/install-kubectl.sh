#!/usr/bin/env bash
# Builds kubectl from the Go module proxy the way hack/install-kube-apiserver.sh builds
# kube-apiserver: a throwaway module that requires k8s.io/kubernetes and rewrites its
# ./staging replaces to the published k8s.io/X versions. Cached as
# $KPROF_CACHE/k8s/$K8S_VERSION/kubectl; prints that path.
set -euo pipefail
K8S_VERSION="${K8S_VERSION:-1.36.3}"
CACHE="${KPROF_CACHE:-$HOME/.cache/kprof}"
BIN_DIR="$CACHE/k8s/$K8S_VERSION"
if [[ -x "$BIN_DIR/kubectl" ]]; then
  echo "$BIN_DIR/kubectl"
  exit 0
fi
mkdir -p "$BIN_DIR"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
STAGING_VERSION="v0.${K8S_VERSION#1.}"
cd "$WORK"
cat > go.mod <<MOD
module kprof.local/kubectlbuild

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

import _ "k8s.io/kubernetes/cmd/kubectl"
GO
go mod tidy >&2
# Build to a temporary name and rename, so an interrupted build never leaves a broken cache.
# Stamp the version as the release build does, so `kubectl version` reports it.
LDFLAGS=""
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  LDFLAGS+=" -X $pkg.gitVersion=v${K8S_VERSION} -X $pkg.gitMajor=${K8S_VERSION%%.*}"
  MINOR="${K8S_VERSION#*.}"; LDFLAGS+=" -X $pkg.gitMinor=${MINOR%%.*} -X $pkg.gitTreeState=clean"
done
CGO_ENABLED=0 go build -ldflags "$LDFLAGS" -o "$BIN_DIR/kubectl.tmp" k8s.io/kubernetes/cmd/kubectl >&2
mv "$BIN_DIR/kubectl.tmp" "$BIN_DIR/kubectl"
echo "$BIN_DIR/kubectl"
