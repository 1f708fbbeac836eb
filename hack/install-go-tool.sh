#!/usr/bin/env bash
# Usage: hack/install-go-tool.sh NAME MODULE/PATH@VERSION
# go installs a tool into $KPROF_CACHE/bin/NAME-VERSION (cached), links $KPROF_CACHE/bin/NAME
# to it, and prints the path.
set -euo pipefail
NAME="$1"; PKG="$2"; VERSION="${PKG##*@}"
CACHE="${KPROF_CACHE:-$HOME/.cache/kprof}"
BIN="$CACHE/bin"
TARGET="$BIN/$NAME-$VERSION"
if [[ ! -x "$TARGET" ]]; then
  mkdir -p "$BIN/tmp-$NAME"
  echo "install: go install $PKG" >&2
  GOBIN="$BIN/tmp-$NAME" CGO_ENABLED=0 go install "$PKG" >&2
  # go install names the binary after the last path element that is not a major
  # version suffix (sigs.k8s.io/kustomize/kustomize/v5 installs "kustomize").
  EXE="$(basename "${PKG%@*}")"
  [[ $EXE =~ ^v[0-9]+$ ]] && EXE="$(basename "$(dirname "${PKG%@*}")")"
  mv "$BIN/tmp-$NAME/$EXE" "$TARGET"
  rmdir "$BIN/tmp-$NAME"
fi
ln -sf "$NAME-$VERSION" "$BIN/$NAME"
echo "$BIN/$NAME"
