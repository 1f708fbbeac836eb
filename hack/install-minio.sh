#!/usr/bin/env bash
# Installs MinIO (the S3-compatible server the storage tests run against) from the Go
# module proxy into $KPROF_CACHE/bin/minio and prints its path. Cached.
set -euo pipefail
MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
exec "$(dirname "$0")/install-go-tool.sh" minio "github.com/minio/minio@$MINIO_VERSION"
