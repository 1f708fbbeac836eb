//go:build linux

package symbolize

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// toolBinaries are large real Go binaries of this machine: the go command and the
// compiler.
func toolBinaries(t *testing.T) map[string]string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOROOT", "GOTOOLDIR").Output()
	if err != nil {
		t.Fatalf("go env: %v", err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		t.Fatalf("go env printed %q", out)
	}
	bins := map[string]string{"go": filepath.Join(f[0], "bin", "go"), "compile": filepath.Join(f[1], "compile")}
	for name, p := range bins {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	return bins
}

// loadTable reads the symbol table of the file at path as the Symbolizer does.
func loadTable(t *testing.T, path string) *symTable {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	id, err := statID(f)
	if err != nil {
		t.Fatal(err)
	}
	o, _, err := openObject(f, id.size, id, DefaultMaxFileBytes)
	if err != nil {
		t.Fatal(err)
	}
	tab := o.table()
	if tab.err != nil {
		t.Fatal(tab.err)
	}
	return tab
}

func heapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// TestTableHeapOfGoTools logs what a loaded table of the go command and of the compiler
// keeps on the heap, next to the size the cache accounts for it. It asserts nothing on
// the sizes (they vary with the toolchain), only that both were measured.
func TestTableHeapOfGoTools(t *testing.T) {
	for name, path := range toolBinaries(t) {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		before := heapInuse()
		tab := loadTable(t, path)
		after := heapInuse()
		if got := tab.lookup(tab.goLo, nil); len(got) == 0 || got[0].fn == "" {
			t.Errorf("%s: no function at the start of the Go text", name)
		}
		t.Logf("%s (%d MiB file): HeapInuse +%.1f MiB, estimated %.1f MiB", name, st.Size()>>20,
			float64(int64(after)-int64(before))/(1<<20), float64(tab.sizeBytes())/(1<<20))
		runtime.KeepAlive(tab)
	}
}

func TestCacheIsBoundedByBytes(t *testing.T) {
	one := loadTable(t, targetBinary(t, "go-1")).sizeBytes()
	names := []string{"go-1", "go-2", "go-3"}
	cases := []struct {
		name     string
		maxBytes int64
		// maxFiles is the most tables that fit; oversized, whether no table fits at all.
		maxFiles  int
		oversized bool
	}{
		{name: "room for two of three binaries evicts, and all still resolve", maxBytes: one*5/2 + one/10, maxFiles: 2},
		{name: "a table larger than the cache is used but not cached", maxBytes: one / 2, maxFiles: 0, oversized: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSymbolizer(t, Config{MaxCacheBytes: tc.maxBytes})
			check := func(when string) {
				t.Helper()
				st := s.Stats()
				if st.CacheBytes > tc.maxBytes || st.Files > tc.maxFiles {
					t.Errorf("%s: CacheBytes %d over MaxCacheBytes %d, or Files %d over %d", when, st.CacheBytes, tc.maxBytes, st.Files, tc.maxFiles)
				}
			}
			var tgs []*target
			for _, name := range names {
				tg := start(t, name)
				observe(t, s, tg.pid)
				check("after observing " + name)
				tgs = append(tgs, tg)
			}
			for range 2 { // twice round: each pass evicts what the next needs
				for _, tg := range tgs {
					stack := append(tg.report("leaf"), tg.report("ret")...)
					wantFrames(t, s.User(tg.pid, addrsOf(stack)), stack)
					check("after resolving " + tg.name)
				}
			}
			st := s.Stats()
			t.Logf("table of go-1 %d bytes; MaxCacheBytes %d: %+v", one, tc.maxBytes, st)
			if tc.oversized {
				if st.TablesOversized < uint64(2*len(names)) || st.Files != 0 || st.CacheBytes != 0 {
					t.Errorf("TablesOversized %d, Files %d, CacheBytes %d; want every read oversized and nothing cached", st.TablesOversized, st.Files, st.CacheBytes)
				}
			} else if st.CacheEvictions < 3 || st.TablesOversized != 0 {
				t.Errorf("CacheEvictions %d, TablesOversized %d; want at least 3 evictions and no oversized table", st.CacheEvictions, st.TablesOversized)
			}
		})
	}
}

// A table larger than the whole cache is read once while its process keeps being
// sampled (every stack of a kube-apiserver used to read its ~84 MiB table again),
// and let go once it has been idle for bigTableIdle.
func TestAnOversizedTableInUseIsReadOnce(t *testing.T) {
	one := loadTable(t, targetBinary(t, "go-1")).sizeBytes()
	s := newSymbolizer(t, Config{MaxCacheBytes: one / 2})
	now := time.Now()
	s.now = func() time.Time { return now }
	tg := start(t, "go-1")
	observe(t, s, tg.pid)
	stack := append(tg.report("leaf"), tg.report("ret")...)
	for range 5 {
		wantFrames(t, s.User(tg.pid, addrsOf(stack)), stack)
		now = now.Add(bigTableIdle / 2)
	}
	if st := s.Stats(); st.TablesOversized != 1 || st.CacheBytes != 0 {
		t.Fatalf("after 5 stacks: TablesOversized %d, CacheBytes %d; want the table read once and not in the cache", st.TablesOversized, st.CacheBytes)
	}
	now = now.Add(bigTableIdle + time.Second)
	wantFrames(t, s.User(tg.pid, addrsOf(stack)), stack)
	if st := s.Stats(); st.TablesOversized != 2 {
		t.Fatalf("after an idle %s: TablesOversized %d, want the table read again", bigTableIdle, st.TablesOversized)
	}
}
