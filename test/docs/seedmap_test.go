package docs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/storage"
	"github.com/kprof/kprof/internal/testenv"
)

const seedMappingDoc = "docs/seed-mapping.md"

// mdTable is one Markdown table of a document, under the nearest "## " heading.
type mdTable struct {
	heading string
	header  []string
	rows    []mdRow
}

type mdRow struct {
	line  int
	cells []string
}

// parseTables returns the pipe tables of a Markdown document.
func parseTables(doc string) []mdTable {
	var (
		tables  []mdTable
		cur     *mdTable
		heading string
	)
	for i, line := range strings.Split(doc, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "## ") {
			heading = strings.TrimPrefix(trimmed, "## ")
		}
		if !strings.HasPrefix(trimmed, "|") {
			if cur != nil {
				tables = append(tables, *cur)
				cur = nil
			}
			continue
		}
		cells := strings.Split(strings.Trim(trimmed, "|"), "|")
		for j := range cells {
			cells[j] = strings.TrimSpace(cells[j])
		}
		switch {
		case cur == nil:
			cur = &mdTable{heading: heading, header: cells}
		case strings.Trim(strings.Join(cells, ""), "-: ") == "":
			// the delimiter row
		default:
			cur.rows = append(cur.rows, mdRow{line: i + 1, cells: cells})
		}
	}
	if cur != nil {
		tables = append(tables, *cur)
	}
	return tables
}

var codeSpanRE = regexp.MustCompile("`([^`]+)`")

// codeSpans returns the `code` spans of s.
func codeSpans(s string) []string {
	var out []string
	for _, m := range codeSpanRE.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// repoTopLevel are the repository's entries a path in the mapping may start with.
var repoTopLevel = []string{"api", "bench", "charts", "cmd", "config", "docs", "examples", "hack", "internal", "test", "README.md", "Makefile", "Dockerfile"}

// TestSeedMapping keeps docs/seed-mapping.md true: in its tables, every repository path
// of the kprof and "type instead" columns exists, every kprof flag is in the subcommand's
// --help, every make target is in the Makefile, every kubectl get names the CRD, every
// helm --set changes what helm template renders, every keyTemplate is valid and gives
// the key shown, and the log fields are those of kprof's capture log line.
func TestSeedMapping(t *testing.T) {
	root := testenv.RepoRoot()
	b, err := os.ReadFile(filepath.Join(root, seedMappingDoc))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "("+seedMappingDoc+")") {
		t.Errorf("README.md does not link %s", seedMappingDoc)
	}
	tables := parseTables(doc)
	if len(tables) < 4 {
		t.Fatalf("%s: %d tables, want the layout, key layout, Helm values and logs tables", seedMappingDoc, len(tables))
	}
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	crd, err := os.ReadFile(filepath.Join(root, "config", "crd", "bases", "profiling.io_profilingconfigs.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	kprof := buildKprof(t, root)

	var (
		helmSpans []string
		keyRows   []mdRow
		logRows   []mdRow
		checked   = map[string]int{}
	)
	where := func(r mdRow) string { return fmt.Sprintf("%s:%d", seedMappingDoc, r.line) }
	for _, tbl := range tables {
		for _, r := range tbl.rows {
			if len(r.cells) != len(tbl.header) || len(r.cells) < 3 {
				t.Errorf("%s: %d cells, the table has %d columns", where(r), len(r.cells), len(tbl.header))
				continue
			}
			switch {
			case tbl.header[2] == "keyTemplate":
				keyRows = append(keyRows, r)
				continue
			case strings.HasPrefix(tbl.heading, "Logs"):
				logRows = append(logRows, r)
			}
			for _, span := range append(codeSpans(r.cells[1]), codeSpans(r.cells[2])...) {
				words := strings.Fields(span)
				for _, w := range words {
					p := strings.TrimPrefix(w, "./")
					if first := strings.SplitN(p, "/", 2)[0]; slices.Contains(repoTopLevel, first) {
						checked["path"]++
						if _, err := os.Stat(filepath.Join(root, p)); err != nil {
							t.Errorf("%s: %q names %s, which is not in the repository", where(r), span, p)
						}
					}
				}
				switch {
				case words[0] == "make":
					for _, target := range words[1:] {
						if strings.HasPrefix(target, "-") || strings.Contains(target, "=") {
							continue
						}
						checked["make"]++
						if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(target) + `:`).Match(makefile) {
							t.Errorf("%s: %q: the Makefile has no target %q", where(r), span, target)
						}
					}
				case words[0] == "kprof" && len(words) > 1, len(words) > 3 && words[0] == "go" && words[1] == "run" && strings.TrimPrefix(words[2], "./") == "cmd/kprof":
					if words[0] == "go" {
						words = append([]string{"kprof"}, words[3:]...)
					}
					checked["kprof"]++
					checkKprofFlags(t, kprof, where(r), span, words[1:])
				case len(words) > 2 && words[0] == "kubectl" && words[1] == "get":
					checked["kubectl"]++
					if !regexp.MustCompile(`(?m)^\s*(-|plural:|singular:)\s*` + regexp.QuoteMeta(words[2]) + `\s*$`).Match(crd) {
						t.Errorf("%s: %q: %q is not a name of the ProfilingConfig CRD", where(r), span, words[2])
					}
				case words[0] == "helm" && strings.Contains(span, "--set"):
					helmSpans = append(helmSpans, where(r)+"\x00"+span)
				}
			}
		}
	}
	for _, kind := range []string{"path", "make", "kprof", "kubectl"} {
		if checked[kind] == 0 {
			t.Errorf("%s: no %s checked: the test's parsing and the document disagree", seedMappingDoc, kind)
		}
	}

	t.Run("keyTemplates reproduce the seed's layouts", func(t *testing.T) {
		if len(keyRows) < 2 {
			t.Fatalf("%s: %d keyTemplate rows, want one per seed layout (2)", seedMappingDoc, len(keyRows))
		}
		at := time.Date(2026, 11, 23, 10, 15, 0, 0, time.UTC)
		meta := storage.Meta{Namespace: "shop", Pod: "checkout-0", Service: "checkout", Type: "heap", CapturedAt: at}
		for _, r := range keyRows {
			tmpls, keys := codeSpans(r.cells[2]), codeSpans(r.cells[1])
			if len(tmpls) != 1 || len(keys) == 0 {
				t.Errorf("%s: want one keyTemplate and the key it gives as the first code span", where(r))
				continue
			}
			if err := storage.ValidateKeyTemplate(tmpls[0]); err != nil {
				t.Errorf("%s: %v", where(r), err)
				continue
			}
			if got := storage.RenderKey(tmpls[0], "prod", meta); got != keys[0] {
				t.Errorf("%s: keyTemplate %q gives %q, the document says %q", where(r), tmpls[0], got, keys[0])
			}
		}
	})

	t.Run("log fields are those of a capture's log line", func(t *testing.T) {
		if len(logRows) == 0 {
			t.Fatalf("%s: no Logs table", seedMappingDoc)
		}
		keys, line := captureFailureLogKeys(t, kprof)
		n := 0
		for _, r := range logRows {
			for _, span := range codeSpans(r.cells[1]) {
				switch {
				case regexp.MustCompile(`^[a-z]+$`).MatchString(span):
					n++
					if !keys[span] {
						t.Errorf("%s: log field %q is not in kprof's capture log line:\n%s", where(r), span, line)
					}
				case regexp.MustCompile(`^[A-Z][A-Za-z]+$`).MatchString(span):
					n++
					if !strings.Contains(line, span) {
						t.Errorf("%s: log value %q is not in kprof's capture log line:\n%s", where(r), span, line)
					}
				}
			}
		}
		if n == 0 {
			t.Errorf("%s: the Logs table names no field", seedMappingDoc)
		}
	})

	t.Run("helm values render", func(t *testing.T) {
		helm := tools["helm"].path
		if _, err := os.Stat(helm); err != nil {
			t.Fatalf("helm is not installed at %s: run %s", helm, tools["helm"].install)
		}
		t.Setenv("HELM_CACHE_HOME", t.TempDir())
		t.Setenv("HELM_CONFIG_HOME", t.TempDir())
		t.Setenv("HELM_DATA_HOME", t.TempDir())
		if len(helmSpans) == 0 {
			t.Fatalf("%s: no helm command with --set", seedMappingDoc)
		}
		for _, hs := range helmSpans {
			at, span, _ := strings.Cut(hs, "\x00")
			var sets []string
			words := strings.Fields(span)
			for i, w := range words {
				if w == "--set" && i+1 < len(words) {
					sets = append(sets, words[i+1])
				}
			}
			all, err := helmTemplate(helm, root, sets, "")
			if err != nil {
				t.Errorf("%s: %q: %v", at, span, err)
				continue
			}
			for i, s := range sets {
				without := slices.Delete(slices.Clone(sets), i, i+1)
				out, err := helmTemplate(helm, root, without, "")
				if err != nil {
					t.Errorf("%s: without --set %s: %v", at, s, err)
					continue
				}
				if out == all {
					t.Errorf("%s: --set %s changes nothing helm template renders (a key the chart ignores, or its default value)", at, s)
				}
			}
		}
		// The values file that sets a keyTemplate (--set cannot: braces make a list).
		m := regexp.MustCompile("(?s)```yaml\n(defaultConfig:.*?)```").FindStringSubmatch(doc)
		if m == nil {
			t.Fatalf("%s: no yaml block with defaultConfig", seedMappingDoc)
		}
		tm := regexp.MustCompile(`keyTemplate:\s*"([^"]+)"`).FindStringSubmatch(m[1])
		if tm == nil {
			t.Fatalf("%s: the values block sets no keyTemplate:\n%s", seedMappingDoc, m[1])
		}
		if err := storage.ValidateKeyTemplate(tm[1]); err != nil {
			t.Errorf("%s: values block: %v", seedMappingDoc, err)
		}
		values := filepath.Join(t.TempDir(), "values.yaml")
		if err := os.WriteFile(values, []byte(m[1]), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := helmTemplate(helm, root, nil, values)
		if err != nil {
			t.Fatalf("%s: the values block: %v", seedMappingDoc, err)
		}
		if !strings.Contains(out, fmt.Sprintf("keyTemplate: %q", tm[1])) {
			t.Errorf("%s: helm template with the values block renders no ProfilingConfig with keyTemplate %q", seedMappingDoc, tm[1])
		}
	})
}

// buildKprof builds cmd/kprof into a temp dir.
func buildKprof(t *testing.T, root string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kprof")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/kprof")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/kprof: %v\n%s", err, out)
	}
	return bin
}

// checkKprofFlags runs `kprof SUBCOMMANDS --help` (args up to the first flag, without
// positional arguments) and checks that each --flag of args is listed.
func checkKprofFlags(t *testing.T, kprof, where, span string, args []string) {
	t.Helper()
	var sub, flags []string
	for _, a := range args {
		switch {
		case strings.HasPrefix(a, "--"):
			flags = append(flags, strings.SplitN(a, "=", 2)[0])
		case len(flags) == 0 && regexp.MustCompile(`^[a-z]+$`).MatchString(a):
			sub = append(sub, a)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, kprof, append(sub, "--help")...).CombinedOutput()
	if err != nil {
		t.Errorf("%s: %q: kprof %s --help: %v\n%s", where, span, strings.Join(sub, " "), err, out)
		return
	}
	// The Usage line names the subcommand ("kprof capture pod NAMESPACE/NAME ..."); for an
	// unknown one cobra prints its parent's help.
	if len(sub) == 0 || !regexp.MustCompile(`(?m)^\s+kprof `+regexp.QuoteMeta(strings.Join(sub, " "))+`( |$)`).Match(out) {
		t.Errorf("%s: %q: kprof has no subcommand %q:\n%s", where, span, strings.Join(sub, " "), out)
		return
	}
	for _, f := range flags {
		if !regexp.MustCompile(`(?m)^\s+(-\w, )?` + regexp.QuoteMeta(f) + `\b`).Match(out) {
			t.Errorf("%s: %q: kprof %s has no flag %s", where, span, strings.Join(sub, " "), f)
		}
	}
}

// helmTemplate renders charts/kprof as the docs install it, with sets and an optional
// values file.
func helmTemplate(helm, root string, sets []string, values string) (string, error) {
	args := []string{"template", "kprof", "charts/kprof", "--namespace", "kprof-system", "--kube-version", testenv.K8sVersion}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	if values != "" {
		args = append(args, "-f", values)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, helm, args...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// captureFailureLogKeys runs `kprof run --once` against a closed port and returns the
// keys of its "capture failed" log line (logfmt or JSON) and the line.
func captureFailureLogKeys(t *testing.T, kprof string) (map[string]bool, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens there now: the capture fails as ConnectFailed
	dir := t.TempDir()
	cfg := filepath.Join(dir, "kprof.yaml")
	yml := fmt.Sprintf("targets:\n  - name: closed\n    url: http://%s/debug/pprof\nprofileTypes: [heap]\nstorage:\n  local: {path: %s}\n", addr, filepath.Join(dir, "profiles"))
	if err := os.WriteFile(cfg, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, _ := exec.CommandContext(ctx, kprof, "run", "--once", "--config", cfg).CombinedOutput() // it fails: that is the point
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.Contains(line, "capture failed") {
			continue
		}
		keys := map[string]bool{}
		var obj map[string]any
		if json.Unmarshal([]byte(line), &obj) == nil {
			for k := range obj {
				keys[k] = true
			}
		} else {
			for _, m := range regexp.MustCompile(`(?:^|\s)([A-Za-z_.]+)=`).FindAllStringSubmatch(line, -1) {
				keys[m[1]] = true
			}
		}
		return keys, line
	}
	t.Fatalf("kprof run --once against a closed port logged no \"capture failed\" line:\n%s", out)
	return nil, ""
}
