#!/usr/bin/env bash
# Installs the tools kprof's tests need on a fresh machine and caches them under
# $KPROF_CACHE (default $HOME/.cache/kprof). Prints nothing but progress on stderr;
# idempotent and fast when everything is cached.
#   etcd            Debian package etcd-server
#   kube-apiserver  built from the Go module proxy (hack/install-kube.sh)
#   controller-gen  go install, pinned
#   minio           go install (hack/install-minio.sh), the S3 server of the storage tests
#   perf, bpftrace  Debian packages (hack/install-perf.sh), peers of the agent's fidelity tests and benchmark
#   kwok            go install, pinned (hack/install-go-tool.sh): simulated nodes/pods (testenv.StartCluster)
#   metrics-server  go install, pinned (hack/install-go-tool.sh): metrics.k8s.io for testenv.StartCluster
#   otelcol         OpenTelemetry Collector v0.160.0 built with ocb (hack/install-otelcol.sh): OTLP consumers' tests
#   kustomize       go install, pinned (v5.8.3 needs Go 1.27): renders config/ for make deploy and test/deploy
#   kubectl         built from the Go module proxy (hack/install-kube.sh), runs the docs' commands (test/docs)
#   helm            go install, pinned (hack/install-go-tool.sh): lints, renders and installs charts/kprof (test/helm)
#   chromium        Debian package (hack/install-chromium.sh): the browser of the web UI tests (internal/ui), via chromedp
#   libc6-dbg       Debian package: libc's debug file, for the symbolizer's separate-debug-file tests
#   nodejs          Debian package: a JIT runtime writing a perf map (--perf-basic-prof), for the JIT symbol tests
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${KPROF_CACHE:-$HOME/.cache/kprof}"
BIN="$CACHE/bin"
mkdir -p "$BIN"
CONTROLLER_TOOLS_VERSION="${CONTROLLER_TOOLS_VERSION:-v0.21.0}"
# Keep KWOK_VERSION in step with internal/testenv/testdata/kwok (vendored stage/metrics YAML).
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
METRICS_SERVER_VERSION="${METRICS_SERVER_VERSION:-v0.9.0}"

log() { echo "install-tools: $*" >&2; }

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0
  log "apt-get install ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# etcd for envtest; gcc, libc6-dev and binutils (objcopy) build the C targets of the agent tests;
# util-linux (setpriv, unshare) and mount are Essential on Debian but checked all the same;
# graphviz (dot) draws pprof's call graph in kprof ui (internal/ui's browser tests);
# time (GNU time) reads the peak memory of the commands bench/list compares;
# libc6-dbg is libc's separate debug file (/usr/lib/debug/.build-id), which the agent's
# symbolizer tests name libc's internal functions from; nodejs runs with --perf-basic-prof
# in the JIT symbol tests (symbolize, collector).
apt_install etcd-server gcc libc6-dev binutils util-linux mount graphviz time libc6-dbg nodejs
# envtest looks for etcd and kube-apiserver in one directory.
K8S_DIR="$(dirname "$("$HERE/install-kube.sh" kube-apiserver)")"
ln -sf /usr/bin/etcd "$K8S_DIR/etcd"

"$HERE/install-go-tool.sh" controller-gen "sigs.k8s.io/controller-tools/cmd/controller-gen@$CONTROLLER_TOOLS_VERSION" >/dev/null
"$HERE/install-minio.sh" >/dev/null
"$HERE/install-perf.sh" >/dev/null
"$HERE/install-go-tool.sh" kwok "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" >/dev/null
"$HERE/install-go-tool.sh" metrics-server "sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION" >/dev/null
"$HERE/install-go-tool.sh" kustomize "sigs.k8s.io/kustomize/kustomize/v5@${KUSTOMIZE_VERSION:-v5.8.2}" >/dev/null
"$HERE/install-kube.sh" kubectl >/dev/null
"$HERE/install-go-tool.sh" helm "helm.sh/helm/v3/cmd/helm@${HELM_VERSION:-v3.22.0}" >/dev/null
"$HERE/install-otelcol.sh" >/dev/null
"$HERE/install-chromium.sh" >/dev/null
log "tools ready: KUBEBUILDER_ASSETS=$K8S_DIR"
