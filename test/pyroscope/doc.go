// Package pyroscope holds the interop test of the agent's OTLP export against a real
// Grafana Pyroscope server (hack/install-pyroscope.sh builds it). It runs when
// KPROF_PYROSCOPE=1 or when the server is in the cache ($HOME/.cache/kprof/bin/pyroscope).
package pyroscope
