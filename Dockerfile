# syntax=docker/dockerfile:1
# The kprof image: one static binary for every subcommand (operator, agent, run, capture).
#   make docker-build IMG=ghcr.io/kprof/kprof:v0.1.0
# Multi-arch: docker buildx build --platform linux/amd64,linux/arm64 -t $IMG .
# The BPF objects are committed (bpf2go output, go:embed), so the build needs no clang.

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS=linux
ARG TARGETARCH
# Stamped into the binary (kprof version); make docker-build passes the tree's.
ARG VERSION=devel
ARG COMMIT=unknown
ARG DATE=unknown
WORKDIR /src
# Modules first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY internal/ internal/
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -o /out/kprof \
      -ldflags="-s -w -X github.com/kprof/kprof/internal/version.Version=${VERSION} -X github.com/kprof/kprof/internal/version.Commit=${COMMIT} -X github.com/kprof/kprof/internal/version.Date=${DATE}" \
      ./cmd/kprof

# distroless static: no shell, no package manager, CA certificates (S3, Datadog) and tzdata.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/kprof /kprof
# The operator runs as this user (65532, "nonroot"). The agent DaemonSet overrides it with
# runAsUser 0 and a small capability set (BPF, PERFMON, SYS_PTRACE, SYSLOG; everything else
# dropped): capabilities that a pod spec adds reach a non-root process only through file
# capabilities on the binary (setcap) or the ambient set. Kubernetes cannot set ambient
# capabilities, this image has no setcap, and file capabilities (an xattr) do not survive
# every registry and snapshotter; so root with dropped capabilities is the reliable choice,
# made in config/agent/daemonset.yaml, and this image stays non-root for everything else.
USER 65532:65532
ENTRYPOINT ["/kprof"]
