//go:build linux

package collector

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
// stripped libc's internal functions are named, from libc6-dbg's debug file.
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
	mine := profileOnce(t, c, pid, time.Second) // stackless samples (stack-map collisions) are just skipped

	// What libc's own .dynsym names: a name found in the profile's libc frames that is
	// not there came from the debug file.
	var libcFile string
	exported := make(map[string]bool)
	internal := make(map[string]uint64)
	for _, s := range mine {
		for _, f := range s.Frames {
			if f.Mapping == nil || !strings.HasPrefix(filepath.Base(f.Mapping.File), "libc.so") || f.Function == "" {
				continue
			}
			if libcFile == "" {
				libcFile = f.Mapping.File
				lib, err := elf.Open(libcFile)
				if err != nil {
					t.Fatal(err)
				}
				dyn, err := lib.DynamicSymbols()
				lib.Close()
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range dyn {
					exported[d.Name] = true
				}
			}
			if !exported[f.Function] {
				internal[f.Function] += s.Count
			}
		}
	}
	t.Logf("%d samples; libc's internal functions: %v", total(mine), internal)
	if libcFile == "" {
		logUnnamed(t, mine)
		t.Fatalf("no named libc frame in %d samples of a program spinning in qsort", total(mine))
	}
	if len(internal) == 0 {
		t.Fatalf("every libc frame is named from %s's .dynsym: its debug file was not used (libc6-dbg installed? hack/install-tools.sh installs it)", libcFile)
	}
}
