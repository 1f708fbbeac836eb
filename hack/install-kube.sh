#!/usr/bin/env bash
# Usage: hack/install-kube.sh COMPONENT   (kube-apiserver or kubectl)
# Builds a Kubernetes component from the Go module proxy and prints its path. k8s.io/kubernetes
# is not meant to be imported: its go.mod replaces every staging module with a local path, so
# a throwaway module requires it and rewrites those replaces to the published k8s.io/X
# versions. The version is stamped as a release build does (kube-apiserver reports it, so
# charts with a kubeVersion constraint install; `kubectl version` shows it). Cached as
# $KPROF_CACHE/k8s/$K8S_VERSION/COMPONENT; built under a temporary name and renamed, so an
# interrupted build never leaves a broken cache.
set -euo pipefail
COMPONENT="${1:?usage: $0 kube-apiserver|kubectl}"
case "$COMPONENT" in
  kube-apiserver|kubectl) ;;
  *) echo "install-kube: unknown component $COMPONENT (kube-apiserver or kubectl)" >&2; exit 2 ;;
esac
K8S_VERSION="${K8S_VERSION:-1.36.3}"
CACHE="${KPROF_CACHE:-$HOME/.cache/kprof}"
BIN_DIR="$CACHE/k8s/$K8S_VERSION"
TARGET="$BIN_DIR/$COMPONENT"
if [[ -x "$TARGET" ]]; then
  echo "$TARGET"
  exit 0
fi
mkdir -p "$BIN_DIR"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
STAGING_VERSION="v0.${K8S_VERSION#1.}"
cd "$WORK"
cat > go.mod <<MOD
module kprof.local/kubebuild

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
cat > tools.go <<GO
//go:build tools

package main

import _ "k8s.io/kubernetes/cmd/$COMPONENT"
GO
echo "install-kube: building $COMPONENT v$K8S_VERSION (several minutes the first time)" >&2
go mod tidy >&2
LDFLAGS=""
MINOR="${K8S_VERSION#*.}"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  LDFLAGS+=" -X $pkg.gitVersion=v${K8S_VERSION} -X $pkg.gitMajor=${K8S_VERSION%%.*}"
  LDFLAGS+=" -X $pkg.gitMinor=${MINOR%%.*} -X $pkg.gitTreeState=clean"
done
CGO_ENABLED=0 go build -ldflags "$LDFLAGS" -o "$TARGET.tmp" "k8s.io/kubernetes/cmd/$COMPONENT" >&2
mv "$TARGET.tmp" "$TARGET"
echo "$TARGET"
