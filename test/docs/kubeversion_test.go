package docs

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/kprof/kprof/internal/testenv"
)

// chartKubeVersionRE reads the minimum of the chart's kubeVersion constraint (">=1.29.0-0").
var chartKubeVersionRE = regexp.MustCompile(`(?m)^kubeVersion:\s*"?>=\s*v?1\.(\d+)`)

// minimumREs are the ways a document states the minimum Kubernetes version: "Kubernetes
// 1.29 or later", "Kubernetes >= 1.29", "at least 1.29", "needs Kubernetes 1.29". A
// version that is not a minimum ("helm template assumes Kubernetes 1.20", "Kubernetes
// < 1.30 has no appArmorProfile field") matches none of them.
var minimumREs = []*regexp.Regexp{
	regexp.MustCompile(`(?i)kubernetes\s+v?1\.(\d+)(?:\.\d+)?\s+or\s+(?:later|newer|above|higher)`),
	regexp.MustCompile(`(?i)kubernetes\s*(?:>=|≥|&gt;=)\s*v?1\.(\d+)`),
	regexp.MustCompile(`(?i)at\s+least\s+(?:kubernetes\s+)?v?1\.(\d+)`),
	regexp.MustCompile(`(?i)(?:needs|requires)\s+kubernetes\s+v?1\.(\d+)`),
}

// minimumStatement is one statement of the minimum Kubernetes version in a file.
type minimumStatement struct {
	file  string
	line  int
	text  string
	minor int
}

// kubeMinimums finds every statement of a minimum Kubernetes version in text; a
// statement two patterns match ("needs Kubernetes 1.29 or later") counts once.
func kubeMinimums(file, text string) []minimumStatement {
	var out []minimumStatement
	var seen [][2]int
	for _, re := range minimumREs {
	next:
		for _, m := range re.FindAllStringSubmatchIndex(text, -1) {
			for _, r := range seen {
				if m[0] < r[1] && r[0] < m[1] {
					continue next
				}
			}
			seen = append(seen, [2]int{m[0], m[1]})
			minor, _ := strconv.Atoi(text[m[2]:m[3]])
			out = append(out, minimumStatement{
				file:  file,
				line:  1 + strings.Count(text[:m[0]], "\n"),
				text:  strings.Join(strings.Fields(text[m[0]:m[1]]), " "),
				minor: minor,
			})
		}
	}
	return out
}

// TestKubernetesMinimumAgrees reads the minimum Kubernetes version from the chart's
// kubeVersion and fails on any Markdown document, chart file or sample that states
// another one. README.md and docs/QUICKSTART.md must state it.
func TestKubernetesMinimumAgrees(t *testing.T) {
	root := testenv.RepoRoot()
	chartPath := filepath.Join("charts", "kprof", "Chart.yaml")
	chart, err := os.ReadFile(filepath.Join(root, chartPath))
	if err != nil {
		t.Fatal(err)
	}
	m := chartKubeVersionRE.FindSubmatch(chart)
	if m == nil {
		t.Fatalf("%s: no kubeVersion of the form \">=1.N...\": the minimum the docs are checked against is unknown", chartPath)
	}
	want, _ := strconv.Atoi(string(m[1]))

	var files []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if rel != "." && (skipTopLevel[rel] || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case strings.HasSuffix(rel, ".md"),
			strings.HasPrefix(rel, "charts"+string(filepath.Separator)) && (strings.HasSuffix(rel, ".yaml") || strings.HasSuffix(rel, ".txt") || strings.HasSuffix(rel, ".tpl") || strings.HasSuffix(rel, ".json")),
			strings.HasPrefix(rel, filepath.Join("config", "samples")+string(filepath.Separator)):
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	stated := map[string]bool{}
	for _, rel := range files {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range kubeMinimums(rel, string(b)) {
			stated[rel] = true
			if s.minor != want {
				t.Errorf("%s:%d: %q states Kubernetes 1.%d as the minimum, but %s requires >= 1.%d (kubeVersion): make them agree",
					s.file, s.line, s.text, s.minor, chartPath, want)
			} else {
				t.Logf("%s:%d: %q", s.file, s.line, s.text)
			}
		}
	}
	for _, doc := range []string{"README.md", filepath.Join("docs", "QUICKSTART.md")} {
		if !stated[doc] {
			t.Errorf("%s does not state the minimum Kubernetes version (e.g. \"Kubernetes 1.%d or later\")", doc, want)
		}
	}
}

// TestKubernetesMinimumStatementsAreFound checks the patterns of TestKubernetesMinimumAgrees
// on statements that are and are not minimums, so that test cannot pass by finding nothing.
func TestKubernetesMinimumStatementsAreFound(t *testing.T) {
	for _, tc := range []struct {
		text  string
		minor int // 0: not a minimum
	}{
		{"The operator needs Kubernetes 1.28 or later (the CRD", 28},
		{"Any cluster of Kubernetes\n1.29 or later works", 29},
		{"needs Kubernetes >= 1.30", 30},
		{"requires Kubernetes v1.31.2", 31},
		{"need at least 1.29.", 29},
		{"helm template assumes Kubernetes 1.20, and the chart", 0},
		{"# Kubernetes < 1.30 has no appArmorProfile field.", 0},
		{"kube-apiserver and kubectl 1.36", 0},
	} {
		got := kubeMinimums("t.md", tc.text)
		switch {
		case tc.minor == 0 && len(got) != 0:
			t.Errorf("%q: found minimum %q, it states none", tc.text, got[0].text)
		case tc.minor != 0 && (len(got) != 1 || got[0].minor != tc.minor):
			t.Errorf("%q: found %+v, want one minimum 1.%d", tc.text, got, tc.minor)
		}
	}
}
