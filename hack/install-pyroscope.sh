#!/usr/bin/env bash
# Builds the Grafana Pyroscope server that test/pyroscope runs the agent's OTLP export against:
# the single binary (cmd/pyroscope) of Pyroscope $PYROSCOPE_VERSION, from its source, with
# github.com/grafana/dskit pinned by a replace (the tag's own dskit does not build with this Go),
# and ui/assets.go + ui/execute_template.go taken from the source's git tree (the release tarball's
# ui package is generated). Caches it at $KPROF_CACHE/bin/pyroscope (KPROF_CACHE default
# $HOME/.cache/kprof; the extracted source under $KPROF_CACHE/src) and prints its path. Cold,
# it takes about 10 minutes on 2 cores. Progress goes to stderr.
#
# Source, first found:
#   $KPROF_PYROSCOPE_SRC                        a directory holding Pyroscope's source at the tag
#   $KPROF_PYROSCOPE_GIT (default /work/.mirror/grafana+pyroscope/repo)  a git clone holding the tag
set -euo pipefail
PYROSCOPE_VERSION="${PYROSCOPE_VERSION:-v2.2.1}"
DSKIT="${PYROSCOPE_DSKIT:-github.com/grafana/dskit@v0.0.0-20260324093927-3167f499dfc0}"
CACHE="${KPROF_CACHE:-$HOME/.cache/kprof}"
BIN="$CACHE/bin"
TARGET="$BIN/pyroscope"
STAMP="$TARGET.version"
GIT="${KPROF_PYROSCOPE_GIT:-/work/.mirror/grafana+pyroscope/repo}"

want="$PYROSCOPE_VERSION $DSKIT"
if [[ -x "$TARGET" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  echo "$TARGET"
  exit 0
fi

die() { echo "install-pyroscope: $*" >&2; exit 1; }
command -v go >/dev/null || die "cannot build Pyroscope: go is not installed"

SRC="${KPROF_PYROSCOPE_SRC:-}"
if [[ -z "$SRC" ]]; then
  [[ -d "$GIT" ]] || die "cannot build Pyroscope $PYROSCOPE_VERSION: no source. Set KPROF_PYROSCOPE_SRC to its source tree, or KPROF_PYROSCOPE_GIT to a git clone of github.com/grafana/pyroscope holding tag $PYROSCOPE_VERSION ($GIT does not exist)"
  git -C "$GIT" rev-parse -q --verify "$PYROSCOPE_VERSION^{commit}" >/dev/null ||
    die "cannot build Pyroscope: $GIT has no tag $PYROSCOPE_VERSION"
  SRC="$CACHE/src/pyroscope-$PYROSCOPE_VERSION"
  if [[ ! -f "$SRC/go.mod" ]]; then
    echo "install-pyroscope: extracting $PYROSCOPE_VERSION from $GIT to $SRC" >&2
    rm -rf "$SRC.tmp" && mkdir -p "$SRC.tmp"
    # Only what the server's build reads, blob by blob: a shallow or partial clone may
    # lack some large files (docs videos, test data), which git archive would stop at.
    git -C "$GIT" ls-tree -r "$PYROSCOPE_VERSION" -- api cmd pkg lidia og go.mod go.sum |
      while read -r mode type sha path; do
        [[ "$type" == blob && "$mode" != 120000 ]] || continue
        git -C "$GIT" cat-file -e "$sha" 2>/dev/null || continue # absent test data
        mkdir -p "$SRC.tmp/$(dirname "$path")"
        git -C "$GIT" cat-file blob "$sha" >"$SRC.tmp/$path"
      done
    rm -rf "$SRC" && mv "$SRC.tmp" "$SRC"
  fi
  # The ui package's generated files, from the git tree (absent from an export-ignore'd archive).
  for f in ui/assets.go ui/execute_template.go; do
    if [[ ! -f "$SRC/$f" ]]; then
      mkdir -p "$SRC/ui" && git -C "$GIT" show "$PYROSCOPE_VERSION:$f" >"$SRC/$f" 2>/dev/null || die "cannot build Pyroscope: $GIT has no $f at $PYROSCOPE_VERSION"
    fi
  done
fi
[[ -f "$SRC/go.mod" && -d "$SRC/cmd/pyroscope" ]] || die "cannot build Pyroscope: $SRC is not Pyroscope's source tree (no go.mod or cmd/pyroscope)"

echo "install-pyroscope: building Pyroscope $PYROSCOPE_VERSION in $SRC with $DSKIT (about 10 minutes cold)" >&2
mkdir -p "$BIN"
(cd "$SRC" &&
  go mod edit -replace "github.com/grafana/dskit=$DSKIT" &&
  # The pinned dskit's dns.NewProvider takes (logger, registerer, resolver type); the
  # tag calls it as (resolver type, 2, logger, registerer).
  perl -0pi -e 's/dns\.NewProvider\(\s*(dns\.\w+ResolverType),\s*2,\s*([^,]+?),\s*((?:[^()]|\((?:[^()]|\([^()]*\))*\))+?)\)/dns.NewProvider($2, $3, $1)/gs' \
    pkg/metastore/discovery/parse.go pkg/metastore/raftnode/node_bootstrap.go pkg/pyroscope/modules.go &&
  GOTOOLCHAIN=local GOFLAGS=-mod=mod go build -o "$TARGET.tmp" ./cmd/pyroscope >&2) ||
  die "building Pyroscope failed (see above); the Go module proxy must be reachable for its dependencies"
mv "$TARGET.tmp" "$TARGET"
echo "$want" >"$STAMP"
echo "$TARGET"
