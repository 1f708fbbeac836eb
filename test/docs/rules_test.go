package docs

import (
	"fmt"
	"regexp"
	"time"
)

// class says what happens to a command of the docs.
type class int

const (
	// run: the test runs the command in the document's shell session and checks its
	// exit status (and, with expect, its output).
	run class = iota
	// demo: `make demo` runs it; the test checks that hack/demo.sh still does.
	demo
	// cannot: it cannot run on a test machine; reason says why.
	cannot
)

func (c class) String() string {
	return [...]string{"run by the test", "covered by make demo", "cannot run here"}[c]
}

// rule classifies the commands whose Key matches match (anchored). The first rule that
// matches a command decides; every rule must match at least one command, so the table
// never outlives the docs.
type rule struct {
	match string
	class class
	// reason (cannot): why the command cannot run here.
	reason string
	// demoRE (demo): what hack/demo.sh must contain for the command to be covered.
	demoRE string
	// run only:
	needs   []string      // tools the command needs (checked before the session starts)
	cluster bool          // needs KUBECONFIG of a real kube-apiserver (envtest)
	root    bool          // needs root with CAP_BPF and CAP_PERFMON
	timeout time.Duration // run under timeout(1) with SIGINT; exit status 124 then counts as success
	rewrite [2]string     // regexp and replacement making a long-running command bounded
	expect  string        // regexp its output must match
	after   string        // shell run after the command succeeded (e.g. wait for a port)
}

// waitForPort waits up to 60 s for a TCP listener: a background command is only useful
// once it listens, and a reader types the next command seconds later too.
func waitForPort(hostPort string) string {
	host, port := hostPort[:len(hostPort)-5], hostPort[len(hostPort)-4:]
	return fmt.Sprintf(`for _ in $(seq 600); do (exec 9<>/dev/tcp/%s/%s) 2>/dev/null && break; sleep 0.1; done; (exec 9<>/dev/tcp/%s/%s)`, host, port, host, port)
}

// rules is the classification table. Keys are matched whole (^...$).
var rules = []rule{
	// ---- the two commands that do everything ----
	{match: `make demo`, class: run, needs: []string{"go", "curl"}, expect: `demo: go tool pprof -top .*_cpu\.pb\.gz`},
	{match: `make test`, class: cannot, reason: "runs every test of the repository, this one included (it would recurse); developers and CI run it"},

	// ---- what make demo does (README) ----
	{match: `bin/sample-app --listen 127\.0\.0\.1:6060 --background-load &`, class: demo, demoRE: `"\$SAMPLE_APP" --listen "\$ADDR" --background-load[^\n]*&`},
	{match: `bin/kprof run --once --output \./profiles`, class: demo, demoRE: `"\$KPROF" run --once --output "\$OUT"`},
	{match: `go tool pprof -top -nodecount=12 \S+_cpu\.pb\.gz`, class: demo, demoRE: `go tool pprof -top -nodecount=12 "\$CPU_PROFILE"`},

	// ---- browse what was caught (README, after make demo) ----
	{match: `bin/kprof profiles list`, class: run, expect: `(?m)^CAPTURED\s+NAMESPACE\s+SERVICE[\s\S]*sample-app\s+cpu\s`},
	{match: `(bin/)?kprof profiles list --store s3://\S+ .*`, class: cannot, reason: "needs an AWS account and credentials (internal/index and cmd/kprof list MinIO with the same code)"},
	{match: `bin/kprof profiles get "\$\(bin/kprof profiles list --type cpu -o name \| tail -n 1\)" -o \S+_cpu\.pb\.gz`, class: run, expect: `Wrote \S+_cpu\.pb\.gz`},
	{match: `bin/kprof profiles merge --service sample-app --type cpu --since 24h -o \S+\.pb\.gz`, class: run, expect: `Merged [1-9]\d* cpu profile\(s\)`},
	{match: `(bin/)?kprof profiles (merge|diff) --store s3://\S+ .*`, class: cannot, reason: "needs an AWS account and credentials (cmd/kprof merges and diffs over MinIO with the same code)"},

	// The UI of the same store: the list names the sample app, and the newest CPU profile's
	// flame graph, loaded in a real browser (headless Chromium, its DOM once the page's
	// scripts ran), carries the hot function the demo's load burns in.
	{match: `(bin/)?kprof ui &`, class: run, needs: []string{"curl", "chromium"}, after: waitForPort("127.0.0.1:8080") +
		` && curl -fsS --max-time 30 'http://127.0.0.1:8080/?type=cpu' | grep -q sample-app` +
		` && timeout 120 chromium --headless --no-sandbox --disable-gpu --dump-dom "http://127.0.0.1:8080$(curl -fsS --max-time 30 'http://127.0.0.1:8080/?type=cpu' | grep -o '/profile/[^"]*/-/flamegraph' | tail -n 1)" 2>/dev/null | grep -q burnCPU`},

	// ---- local mode ----
	{match: `make build`, class: run, needs: []string{"go"}},
	{match: `export PATH="\$PWD/bin:\$PATH"`, class: run},
	{match: `sample-app --background-load &`, class: run, after: waitForPort("127.0.0.1:6060")},
	{match: `kprof run --once`, class: run, expect: `(?s)Stored \d+ profile.*cpu`},
	{match: `ls profiles/local/sample-app/\S+`, class: run, expect: `_cpu\.pb\.gz`},
	{match: `go tool pprof -top \S+_cpu\.pb\.gz`, class: run, needs: []string{"go"}, expect: `(?m)^\s*flat\s+flat%`},
	{match: `go tool pprof -top -sample_index=inuse_space \S+_heap\.pb\.gz`, class: run, needs: []string{"go"}, expect: `(?m)^\s*flat\s+flat%`},
	{match: `cat \S+\.json`, class: run, expect: `"type"`},
	{match: `kprof run --print-default-config > kprof\.yaml`, class: run},
	{match: `cat > \S+ <<'EOF'`, class: run},
	{match: `kprof run --config kprof\.yaml --duration 1m`, class: run,
		rewrite: [2]string{`--duration 1m`, `--duration 15s`}, expect: `Stored \d+ profile`},
	{match: `kprof capture http://127\.0\.0\.1:6060/debug/pprof --type heap,goroutine`, class: run, expect: `Stored 2 profile`},
	{match: `kprof capture http://127\.0\.0\.1:6060/debug/pprof --seconds 5`, class: run, expect: `Stored \d+ profile`},
	{match: `kill %1( %2)?`, class: run},

	// ---- a cluster ----
	{match: `helm install kprof charts/kprof --namespace kprof-system --create-namespace`, class: run, needs: []string{"helm"}, cluster: true, expect: `STATUS: deployed`},
	{match: `helm upgrade kprof charts/kprof .*`, class: run, needs: []string{"helm"}, cluster: true, expect: `STATUS: deployed`},
	{match: `helm uninstall kprof --namespace kprof-system`, class: run, needs: []string{"helm"}, cluster: true},
	// Run right after helm uninstall: the CRD must still be there (helm.sh/resource-policy: keep).
	{match: `kubectl get crd profilingconfigs\.profiling\.io`, class: run, needs: []string{"kubectl"}, cluster: true, expect: `(?m)^profilingconfigs\.profiling\.io\s`},
	{match: `kubectl delete crd profilingconfigs\.profiling\.io`, class: run, needs: []string{"kubectl"}, cluster: true,
		expect: `customresourcedefinition\.apiextensions\.k8s\.io "profilingconfigs\.profiling\.io" deleted`},
	{match: `helm template kprof charts/kprof .* > \S+\.yaml`, class: run, needs: []string{"helm"}},
	{match: `kustomize build config/\S+ > \S+\.yaml`, class: run, needs: []string{"kustomize"}},
	{match: `kubectl apply (--server-side )?-k config/\S+`, class: run, needs: []string{"kubectl"}, cluster: true},
	{match: `kubectl apply -f config/samples/\S+`, class: run, needs: []string{"kubectl"}, cluster: true},
	{match: `kubectl (-n \S+ )?apply -f - <<'EOF'`, class: run, needs: []string{"kubectl"}, cluster: true},
	{match: `kubectl create namespace \S+`, class: run, needs: []string{"kubectl"}, cluster: true},
	{match: `kubectl (-n \S+ )?get profilingconfigs( -A)?`, class: run, needs: []string{"kubectl"}, cluster: true, expect: `checkout`},
	{match: `kubectl (-n \S+ )?describe profilingconfig \S+`, class: run, needs: []string{"kubectl"}, cluster: true},
	{match: `kubectl (-n \S+ )?get events .*`, class: run, needs: []string{"kubectl"}, cluster: true},
	{match: `kubectl (-n \S+ )?get (deployments?|daemonsets?|deployment,daemonset|configmaps?|serviceaccounts?)( .*)?`, class: run, needs: []string{"kubectl"}, cluster: true},
	{match: `kubectl (-n \S+ )?rollout status .*`, class: cannot, reason: "waits for pods to run: envtest runs kube-apiserver and etcd only, no controller-manager or kubelet"},
	{match: `kubectl (-n \S+ )?logs .*`, class: cannot, reason: "reads a running container's log: envtest has no kubelet"},
	{match: `kubectl (-n \S+ )?port-forward .*`, class: cannot, reason: "forwards to a running pod: envtest has no kubelet"},
	{match: `kubectl (-n \S+ )?get profilecaptures`, class: run, needs: []string{"kubectl"}, cluster: true},
	{match: `POD=\$\(kubectl -n \S+ get pod -l \S+ -o jsonpath=.*\)`, class: cannot, reason: "names a pod of the Deployment: envtest runs no controller-manager or kubelet, so there are no pods"},
	{match: `curl -s 'http://127\.0\.0\.1:16060/load\?.*'`, class: cannot, reason: "loads the sample app through the port-forward above, which needs a running pod"},
	{match: `kill %%`, class: cannot, reason: "stops the port-forward above"},
	{match: `curl -s localhost:8080/metrics .*`, class: cannot, reason: "reads the operator's /metrics through the port-forward above, which needs a running pod"},
	{match: `kprof capture pod .*`, class: cannot, reason: "needs a Running pod with a reachable pod IP or pods/portforward: a real cluster's kubelet (the operator's envtest+kwok tests cover the code path)"},
	{match: `aws .*`, class: cannot, reason: "needs an AWS account and credentials"},

	// ---- the node agent ----
	{match: `mkdir -p agent-configs`, class: run},
	{match: `kprof agent --config-dir \./agent-configs --no-cluster .* > agent\.log 2>&1 &`, class: run, root: true, needs: []string{"perf"}},
	{match: `AGENT=\$!`, class: run},
	{match: `sleep \d+`, class: run},
	{match: `curl -s 127\.0\.0\.1:19090/metrics \| grep .*`, class: run, needs: []string{"curl"}, expect: `kprof_agent_samples_total\{config="cpu-99hz"\} [1-9]`},
	{match: `kill -INT \$AGENT; wait \$AGENT`, class: run},
	{match: `perf report -i .*`, class: run, needs: []string{"perf"}, expect: `(?m)^#|Overhead`},
	{match: `go tool pprof -top -nodecount=10 "\$\(ls pprof/pprof-\*\.pb\.gz \| tail -n 1\)"`, class: run, needs: []string{"go"}, expect: `(?m)^\s*flat\s+flat%`},
}

// compiled rules, built once.
var compiled = func() []*regexp.Regexp {
	res := make([]*regexp.Regexp, len(rules))
	for i, r := range rules {
		res[i] = regexp.MustCompile(`^(?:` + r.match + `)$`)
	}
	return res
}()

// classify returns the index of the first rule matching c, or -1.
func classify(c command) int {
	for i, re := range compiled {
		if re.MatchString(c.Key) {
			return i
		}
	}
	return -1
}
