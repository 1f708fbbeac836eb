#!/usr/bin/env bash
# Installs MinIO (the S3-compatible server the storage tests run against) from the Go
# module proxy into $KPROF_CACHE/bin/minio and prints its path. Cached.
set -euo pipefail
CACHE="${KPROF_CACHE:-$HOME/.cache/kprof}"
MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
BIN="$CACHE/bin"
if [[ -x "$BIN/minio" ]]; then
  echo "$BIN/minio"
  exit 0
fi
mkdir -p "$BIN/tmp-minio"
echo "install-minio: go install github.com/minio/minio@$MINIO_VERSION (a few minutes the first time)" >&2
GOBIN="$BIN/tmp-minio" CGO_ENABLED=0 go install "github.com/minio/minio@$MINIO_VERSION" >&2
mv "$BIN/tmp-minio/minio" "$BIN/minio"
rmdir "$BIN/tmp-minio"
echo "$BIN/minio"
