package docs

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/kprof/kprof/internal/testenv"
)

// documents whose commands are checked, in the order their sessions run.
var documents = []string{"README.md", "docs/QUICKSTART.md"}

// tools maps a tool the docs' commands use to where the test finds it and the script
// that installs it. Tools found on PATH have no path.
var tools = map[string]struct{ path, install string }{
	"go":        {install: "Go 1.26 from https://go.dev/dl"},
	"curl":      {install: "apt-get install curl"},
	"chromium":  {install: "hack/install-chromium.sh (make tools)"},
	"perf":      {install: "hack/install-perf.sh"},
	"kubectl":   {path: filepath.Join(cacheDir(), "k8s", testenv.K8sVersion, "kubectl"), install: "hack/install-kube.sh kubectl (make tools)"},
	"helm":      {path: filepath.Join(cacheDir(), "bin", "helm"), install: "hack/install-tools.sh (make tools)"},
	"kustomize": {path: filepath.Join(cacheDir(), "bin", "kustomize"), install: "hack/install-tools.sh (make tools)"},
}

func cacheDir() string {
	if c := os.Getenv("KPROF_CACHE"); c != "" {
		return c
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "kprof")
}

// classified is a document's commands with the rule of each.
type classified struct {
	cmd  command
	rule int
}

// classifyDocs extracts and classifies every command of the documents. Commands that
// no rule matches and rules that match nothing are errors.
func classifyDocs(t *testing.T, root string) map[string][]classified {
	t.Helper()
	used := make([]bool, len(rules))
	out := map[string][]classified{}
	for _, doc := range documents {
		cmds, err := extractFile(filepath.Join(root, doc), doc)
		if err != nil {
			t.Fatalf("extract commands: %v", err)
		}
		if len(cmds) == 0 {
			t.Errorf("%s: no commands found in its sh/bash/console blocks", doc)
		}
		for _, c := range cmds {
			i := classify(c)
			if i < 0 {
				t.Errorf("%s\n\tmatches no rule of test/docs/rules_test.go: have the test run it (class run), cover it by make demo, "+
					"or list it with the reason it cannot run here", c)
				continue
			}
			used[i] = true
			out[doc] = append(out[doc], classified{c, i})
		}
	}
	for i, u := range used {
		if !u {
			t.Errorf("rule %q (%s) matches no command of %v: remove it", rules[i].match, rules[i].class, documents)
		}
	}
	return out
}

// TestEveryCommandIsClassified prints the classification table and checks that
// every command of the docs has a class and every covered-by-demo command is in
// hack/demo.sh.
func TestEveryCommandIsClassified(t *testing.T) {
	root := testenv.RepoRoot()
	byDoc := classifyDocs(t, root)
	demoScript, err := os.ReadFile(filepath.Join(root, "hack", "demo.sh"))
	if err != nil {
		t.Fatal(err)
	}
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^demo:.*\n\thack/demo\.sh$`).Match(makefile) {
		t.Errorf("Makefile: the demo target no longer runs hack/demo.sh, so the commands classified %q are not covered", demo)
	}
	var table strings.Builder
	for _, doc := range documents {
		for _, c := range byDoc[doc] {
			r := rules[c.rule]
			note := r.reason
			if r.class == demo {
				note = "hack/demo.sh: " + r.demoRE
				if !regexp.MustCompile(r.demoRE).Match(demoScript) {
					t.Errorf("%s\n\tis classified %q, but hack/demo.sh does not match %q", c.cmd, demo, r.demoRE)
				}
			}
			if r.class == run && r.rewrite[0] != "" {
				note = fmt.Sprintf("bounded: %s → %s", r.rewrite[0], r.rewrite[1])
			}
			fmt.Fprintf(&table, "%-60.60s  %-22s %s\n", fmt.Sprintf("%s:%d %s", c.cmd.Doc, c.cmd.Line, c.cmd.Key), r.class, note)
		}
	}
	t.Logf("commands of the docs:\n%s", table.String())
}

// TestDocsCommandsRun runs each document's run-class commands in one shell session in
// a copy of the repository, with a real kube-apiserver (envtest) for the commands that
// need a cluster.
func TestDocsCommandsRun(t *testing.T) {
	root := testenv.RepoRoot()
	byDoc := classifyDocs(t, root)
	if t.Failed() {
		t.FailNow()
	}
	toolDir := t.TempDir()
	for _, doc := range documents {
		t.Run(strings.TrimSuffix(filepath.Base(doc), ".md"), func(t *testing.T) {
			var steps []step
			needCluster, needRoot := false, false
			needs := map[string]bool{"go": true}
			for _, c := range byDoc[doc] {
				r := rules[c.rule]
				if r.class != run {
					continue
				}
				text, err := prepare(c.cmd, r)
				if err != nil {
					t.Fatal(err)
				}
				steps = append(steps, step{cmd: c.cmd, rule: r, text: text})
				needCluster = needCluster || r.cluster
				needRoot = needRoot || r.root
				for _, n := range r.needs {
					needs[n] = true
				}
				if r.cluster {
					needs["kubectl"] = true
				}
			}
			if needRoot && os.Geteuid() != 0 {
				t.Fatalf("%s runs the node agent, which needs root with CAP_BPF and CAP_PERFMON: run make test as root", doc)
			}
			linkTools(t, toolDir, needs)
			// Both documents start the sample app on 127.0.0.1:6060 (make demo, sample-app &):
			// with another process there, every later step would fail or profile the wrong one.
			if err := demoPortProblem(demoAddr); err != nil {
				t.Fatal(err)
			}
			work := copyRepo(t, root)
			env := sessionEnv(t, work, toolDir)
			if needCluster {
				env = append(env, "KUBECONFIG="+startAPIServer(t))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
			defer cancel()
			began := time.Now()
			results := runSession(ctx, t, work, env, steps)
			t.Logf("%s: %d commands in %s", doc, len(steps), time.Since(began).Round(time.Second))
			for i, s := range steps {
				res := results[i]
				switch {
				case !res.ran:
					t.Errorf("%s\n\tdid not run (the session ended before it)", s.cmd)
				case !ok(s.rule, res.status):
					t.Errorf("%s\n\texit status %d; output:\n%s", s.cmd, res.status, tail(res.output, 3000))
				case s.rule.expect != "" && !regexp.MustCompile(s.rule.expect).MatchString(res.output):
					t.Errorf("%s\n\toutput does not match %q:\n%s", s.cmd, s.rule.expect, tail(res.output, 3000))
				default:
					t.Logf("ok  %s", s.cmd)
				}
			}
			if t.Failed() {
				logSessionLogs(t, work)
			}
		})
	}
}

// logSessionLogs prints the end of each *.log file the session's commands wrote
// (a background process's output, such as the agent's agent.log): why it died
// is there, not in the output of the step that found it gone.
func logSessionLogs(t *testing.T, work string) {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(work, "*.log"))
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			t.Logf("%s: %v", l, err)
			continue
		}
		t.Logf("the end of %s:\n%s", filepath.Base(l), tail(string(b), 3000))
	}
}

// linkTools puts the tools the session needs into dir (on the session's PATH), or
// fails naming the script that installs a missing one.
func linkTools(t *testing.T, dir string, needs map[string]bool) {
	t.Helper()
	for name := range needs {
		tool, known := tools[name]
		if !known {
			t.Fatalf("tool %q has no entry in the tools table of test/docs", name)
		}
		if tool.path == "" {
			if _, err := exec.LookPath(name); err != nil {
				t.Fatalf("%s is not installed (%v): install it with %s", name, err, tool.install)
			}
			continue
		}
		if _, err := os.Stat(tool.path); err != nil {
			t.Fatalf("%s is not installed at %s: run %s", name, tool.path, tool.install)
		}
		link := filepath.Join(dir, name)
		_ = os.Remove(link)
		if err := os.Symlink(tool.path, link); err != nil {
			t.Fatal(err)
		}
	}
}

// skipTopLevel are the repository's entries a session does not copy: history, build
// outputs and what earlier runs left behind.
var skipTopLevel = map[string]bool{".git": true, "bin": true, "profiles": true, ".demo": true, "kprof": true}

// copyRepo copies the repository (without history and build outputs) into a temp dir,
// so the documents' commands run against the current tree but write nothing into it.
func copyRepo(t *testing.T, root string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "kprof")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if rel != "." && !strings.Contains(rel, string(filepath.Separator)) && skipTopLevel[rel] {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(rel, ".test") {
			return nil
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.Type().IsRegular():
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, info.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatalf("copy the repository: %v", err)
	}
	return dst
}

// sessionEnv is the environment of a session: the caller's, with the copy's bin/ and
// the test tools first on PATH and helm's state in temp dirs.
func sessionEnv(t *testing.T, work, toolDir string) []string {
	t.Helper()
	helmHome := t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "PATH", "KUBECONFIG", "HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME", "GOFLAGS":
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"PATH="+filepath.Join(work, "bin")+":"+toolDir+":"+os.Getenv("PATH"),
		"HELM_CACHE_HOME="+filepath.Join(helmHome, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(helmHome, "config"),
		"HELM_DATA_HOME="+filepath.Join(helmHome, "data"),
		// Each session builds in a new directory; without -trimpath the build cache
		// keys on that directory and every run would rebuild kprof from scratch.
		"GOFLAGS=-trimpath",
	)
}

// startAPIServer starts kube-apiserver and etcd (envtest) without kprof's CRD, so
// the documents install it themselves as a reader would, and returns a kubeconfig.
func startAPIServer(t *testing.T) string {
	t.Helper()
	env, err := testenv.Start(func(e *envtest.Environment) {
		e.CRDDirectoryPaths, e.ErrorIfCRDPathMissing = nil, false
	})
	if err != nil {
		t.Fatalf("%v (kube-apiserver and etcd come from hack/install-tools.sh)", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop envtest: %v", err)
		}
	})
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := writeKubeconfig(path, env.Config); err != nil {
		t.Fatal(err)
	}
	// A kube-apiserver built without version stamps reports v0.0.0-master: helm then fails
	// any chart with a kubeVersion constraint, and charts/kprof treats it as "new". Say so,
	// since a helm failure would otherwise be puzzling.
	dc, err := discovery.NewDiscoveryClientForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := dc.ServerVersion(); err != nil || !strings.HasPrefix(v.GitVersion, "v1.") {
		t.Logf("note: kube-apiserver reports version %v (err %v), not v%s: helm refuses charts with a kubeVersion; "+
			"the cached binary predates hack/install-kube.sh's version stamp: delete it and run make tools", v, err, testenv.K8sVersion)
	}
	return path
}

func writeKubeconfig(path string, cfg *rest.Config) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin", Namespace: "default"}
	kc.CurrentContext = "envtest"
	return clientcmd.WriteToFile(*kc, path)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
