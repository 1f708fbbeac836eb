#!/usr/bin/env bash
# Builds the OpenTelemetry Collector that kprof's OTLP tests run against (OTLP receiver; debug
# and file exporters; profiles behind --feature-gates=+service.profilesSupport) with the
# collector builder (ocb) from the Go module proxy, from the manifest hack/otelcol/builder.yaml.
# Caches it at $KPROF_CACHE/bin/otelcol-$OTELCOL_VERSION (KPROF_CACHE default $HOME/.cache/kprof),
# rebuilt only when the manifest changes, and prints its path. Progress goes to stderr.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# Keep in step with hack/otelcol/builder.yaml.
OTELCOL_VERSION="${OTELCOL_VERSION:-v0.160.0}"
CACHE="${KPROF_CACHE:-$HOME/.cache/kprof}"
BIN="$CACHE/bin"
MANIFEST="$HERE/otelcol/builder.yaml"
TARGET="$BIN/otelcol-$OTELCOL_VERSION"
STAMP="$TARGET.manifest.sha256"

sum="$(sha256sum "$MANIFEST" | cut -d' ' -f1)"
if [[ -x "$TARGET" && -f "$STAMP" && "$(cat "$STAMP")" == "$sum" ]]; then
  echo "$TARGET"
  exit 0
fi

OCB="$("$HERE/install-go-tool.sh" ocb "go.opentelemetry.io/collector/cmd/builder@$OTELCOL_VERSION")"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/kprof-otelcol-XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
echo "install-otelcol: building the collector $OTELCOL_VERSION in $WORK (a few minutes on 2 cores)" >&2
# output_path in the manifest is relative: the build happens in $WORK.
(cd "$WORK" && CGO_ENABLED=0 "$OCB" --config "$MANIFEST" >&2)
mkdir -p "$BIN"
mv "$WORK/build/otelcol" "$TARGET.tmp"
mv "$TARGET.tmp" "$TARGET"
echo "$sum" >"$STAMP"
ln -sf "otelcol-$OTELCOL_VERSION" "$BIN/otelcol"
echo "$TARGET"
