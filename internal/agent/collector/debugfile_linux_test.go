//go:build linux

package collector

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/agent/profile"
)

// qsortLoop sorts an array again and again: its time is in libc's sorting code,
// internal functions that libc's .dynsym does not name.
const qsortLoop = `#include <stdio.h>
#include <stdlib.h>

static int cmp(const void *a, const void *b) {
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

int main(void) {
	enum { n = 4096 };
	static int v[n];
	printf("ready\n");
	fflush(stdout);
	for (unsigned seed = 1;; seed++) {
		for (int i = 0; i < n; i++)
			v[i] = (int)((seed * 2654435761u) ^ (unsigned)(i * 40503));
		qsort(v, n, sizeof v[0], cmp);
	}
}
`

// TestProfilesNameLibcFromItsDebugFile profiles a program spinning in qsort: the
// stripped libc's internal functions are named, from libc6-dbg's debug file
// (hack/install-tools.sh installs it).
func TestProfilesNameLibcFromItsDebugFile(t *testing.T) {
	requireSampling(t)
	dir := t.TempDir()
	src, bin := filepath.Join(dir, "qsort.c"), filepath.Join(dir, "qsort")
	if err := os.WriteFile(src, []byte(qsortLoop), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("gcc", "-O1", "-fno-omit-frame-pointer", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc (hack/install-tools.sh installs it): %v\n%s", err, out)
	}
	c := openCollector(t, 99, nil)
	pid := startReady(t, bin)

	// What libc's own .dynsym names: a name in a libc frame that is not there came
	// from the debug file.
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	var libcFile string
	for line := range strings.Lines(string(maps)) {
		if f := strings.Fields(line); len(f) == 6 && strings.HasPrefix(filepath.Base(f[5]), "libc.so") {
			libcFile = f[5]
			break
		}
	}
	if libcFile == "" {
		t.Fatalf("no libc in the maps of %d:\n%s", pid, maps)
	}
	lib, err := elf.Open(libcFile)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := lib.DynamicSymbols()
	lib.Close()
	if err != nil {
		t.Fatal(err)
	}
	exported := make(map[string]bool)
	for _, d := range dyn {
		exported[d.Name] = true
	}
	internal := func(f profile.Frame) bool {
		return f.Mapping != nil && f.Mapping.File == libcFile && f.Function != "" && !exported[f.Function]
	}
	mine := collectUntil(t, c, pid, 10*time.Minute, internal)
	named := make(map[string]uint64)
	for _, s := range mine {
		for _, f := range s.Frames {
			if internal(f) {
				named[f.Function] += s.Count
			}
		}
	}
	t.Logf("libc's internal functions named in the profile: %v", named)
}
