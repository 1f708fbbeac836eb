package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/testenv"
)

// profileTypeNames are the ProfileType enum of the CRD.
var profileTypeNames = []string{"cpu", "heap", "goroutine", "mutex", "block", "allocs", "threadcreate"}

// TestSamplesSayWhatTheyCapture checks that the comment heading each sample
// ProfilingConfig names exactly the profile types the sample captures: a reader
// copies the sample for what its comment says.
func TestSamplesSayWhatTheyCapture(t *testing.T) {
	root := testenv.RepoRoot()
	paths, err := filepath.Glob(filepath.Join(root, "config", "samples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, path := range paths {
		rel, _ := filepath.Rel(root, path)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var pc profilingv1alpha1.ProfilingConfig
		if err := yaml.Unmarshal(b, &pc); err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		if pc.Kind != "ProfilingConfig" {
			continue
		}
		checked++
		types := make([]string, 0, len(pc.Spec.ProfileTypes))
		for _, pt := range pc.Spec.ProfileTypes {
			types = append(types, string(pt))
		}
		if len(types) == 0 {
			types = []string{"cpu", "heap"} // the CRD's default
		}
		comment := headComment(string(b))
		if comment == "" {
			t.Errorf("%s: no comment above the object says what it captures", rel)
			continue
		}
		for _, name := range profileTypeNames {
			says := regexp.MustCompile(`(?i)\b` + name + `\b`).MatchString(comment)
			captures := slices.Contains(types, name)
			switch {
			case captures && !says:
				t.Errorf("%s: captures %v, but its comment does not name %q:\n%s", rel, types, name, comment)
			case says && !captures:
				t.Errorf("%s: its comment names %q, but it captures %v:\n%s", rel, name, types, comment)
			}
		}
	}
	if checked == 0 {
		t.Fatalf("no ProfilingConfig found in config/samples/*.yaml")
	}
}

// headComment returns the comment lines at the top of a YAML file, without the "#".
func headComment(s string) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(l, "#") {
			break
		}
		lines = append(lines, strings.TrimSpace(strings.TrimPrefix(l, "#")))
	}
	return strings.Join(lines, "\n")
}
