// Package failover tests the operator's high availability with real processes: two
// `kprof operator` replicas (built from cmd/kprof) electing a leader on a simulated
// cluster (envtest kube-apiserver + etcd, kwok pods served by real sample apps,
// metrics-server, MinIO), the leader killed with SIGKILL mid-schedule and inside a
// threshold cooldown, and a dead leader's spool delivered.
//
// It needs the tools of hack/install-tools.sh; without them the tests fail and say so.
// Run: go test -race ./test/failover/
package failover
