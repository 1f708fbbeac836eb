// Package failover tests the operator's availability with real processes: `kprof
// operator` replicas (built from cmd/kprof) electing a leader on a simulated cluster
// (envtest kube-apiserver + etcd, kwok pods served by real sample apps,
// metrics-server, MinIO). The leader is killed with SIGKILL mid-schedule and inside a
// threshold cooldown, and with profiles in its spool; kube-apiserver and etcd are
// restarted under it, and throttled (429 with Retry-After) through a proxy; and a
// config written with the previous release's CRD (from git history) is upgraded.
//
// It needs the tools of hack/install-tools.sh and the repository's git history;
// without them the tests fail and say so. Run: go test -race ./test/failover/
package failover
