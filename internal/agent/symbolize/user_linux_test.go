//go:build linux

package symbolize

import (
	"debug/elf"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/agent/profile"
)

func newSymbolizer(t *testing.T, cfg Config) *Symbolizer {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func observe(t *testing.T, s *Symbolizer, pid int32) {
	t.Helper()
	if err := s.Observe(pid); err != nil {
		t.Fatalf("Observe(%d): %v", pid, err)
	}
}

// gnuBuildID reads the GNU build ID of path with debug/elf, independently of the code
// under test.
func gnuBuildID(t *testing.T, path string) string {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := f.Section(".note.gnu.build-id")
	if s == nil {
		t.Fatalf("%s has no .note.gnu.build-id", path)
	}
	b, err := s.Data()
	if err != nil || len(b) < 16 {
		t.Fatalf("%s: build ID note: %v", path, err)
	}
	return hex.EncodeToString(b[16:]) // 12-byte header + "GNU\0"
}

// linkAddr is the address name has in path's symbol tables, 0 when absent.
func linkAddr(t *testing.T, path, name string) uint64 {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, _ := f.Symbols()
	dyn, _ := f.DynamicSymbols()
	for _, s := range append(syms, dyn...) {
		if s.Name == name {
			return s.Value
		}
	}
	return 0
}

// wantFrames checks that got is the frames of want, address by address, inlined
// frames expanded: function names, and file:line where want has them.
func wantFrames(t *testing.T, got []profile.Frame, want []targetLine) {
	t.Helper()
	var flat []wantFrame
	var addrs []uint64
	for _, w := range want {
		for _, f := range w.frames {
			flat = append(flat, f)
			addrs = append(addrs, w.addr)
		}
	}
	if len(got) != len(flat) {
		t.Errorf("got %d frames, want %d:", len(got), len(flat))
		for _, g := range got {
			t.Errorf("  got  %#x %q %s:%d", g.Address, g.Function, g.File, g.Line)
		}
		for i, w := range flat {
			t.Errorf("  want %#x %q %s:%d", addrs[i], w.fn, w.file, w.line)
		}
		return
	}
	for i, w := range flat {
		g := got[i]
		if g.Function != w.fn || g.File != w.file || g.Line != w.line {
			t.Errorf("frame %d at %#x: got %q %s:%d, want %q %s:%d", i, addrs[i], g.Function, g.File, g.Line, w.fn, w.file, w.line)
		}
		if g.Address != addrs[i] || g.Kernel {
			t.Errorf("frame %d: Address %#x Kernel %v, want %#x false", i, g.Address, g.Kernel, addrs[i])
		}
		if g.Mapping == nil {
			t.Errorf("frame %d at %#x: no Mapping", i, addrs[i])
		} else if addrs[i] < g.Mapping.Start || addrs[i] >= g.Mapping.Limit {
			t.Errorf("frame %d at %#x: Mapping [%#x, %#x) does not contain it", i, addrs[i], g.Mapping.Start, g.Mapping.Limit)
		}
	}
}

func addrsOf(lines []targetLine) []uint64 {
	out := make([]uint64, len(lines))
	for i, l := range lines {
		out[i] = l.addr
	}
	return out
}

// checkTarget symbolizes what tg reported about itself.
func checkTarget(t *testing.T, s *Symbolizer, tg *target, lang string) {
	t.Helper()
	entry := tg.report("entry")
	if len(entry) != 1 {
		t.Fatalf("%s reported %d entries, want 1", tg.name, len(entry))
	}
	leafFn := map[string]string{"go": "main.kprofAlpha", "c": "kprof_alpha"}[lang]
	if fs := entry[0].frames; len(fs) != 1 || fs[0].fn != leafFn {
		t.Fatalf("%s reports its entry as %+v, want %q: the target is not what this test expects", tg.name, fs, leafFn)
	}

	t.Run("the leaf is named at a function's entry", func(t *testing.T) {
		wantFrames(t, s.User(tg.pid, addrsOf(entry)), entry)
	})

	var stack []targetLine
	if lang == "go" {
		stack = append(tg.report("leaf"), tg.report("ret")...)
	} else {
		stack = append(entry, tg.report("ret")...)
	}
	t.Run("a stack is named leaf first, return addresses at their call", func(t *testing.T) {
		if len(stack) < 2 {
			t.Fatalf("%s reported a stack of %d frames", tg.name, len(stack))
		}
		wantFrames(t, s.User(tg.pid, addrsOf(stack)), stack)
	})

	t.Run("a return address at a function's entry belongs to what precedes it", func(t *testing.T) {
		got := s.User(tg.pid, []uint64{entry[0].addr, entry[0].addr})
		if got[0].Function != leafFn {
			t.Errorf("leaf: got %q, want %q", got[0].Function, leafFn)
		}
		if got[1].Function == leafFn {
			t.Errorf("return address %#x was looked up as is, not one byte earlier: got %q", entry[0].addr, got[1].Function)
		}
	})

	t.Run("the mapping is the binary with its build ID", func(t *testing.T) {
		m := s.User(tg.pid, addrsOf(entry))[0].Mapping
		if m == nil {
			t.Fatal("no Mapping")
		}
		if m.File != tg.path {
			t.Errorf("Mapping.File = %q, want %q", m.File, tg.path)
		}
		if want := gnuBuildID(t, tg.path); m.BuildID != want {
			t.Errorf("Mapping.BuildID = %q, want %q", m.BuildID, want)
		}
	})

	if lang == "go" {
		t.Run("an address in inlined code names the inlined function, then its caller", func(t *testing.T) {
			in := tg.report("inlined")
			if len(in) != 1 || len(in[0].frames) != 2 || in[0].frames[0].fn != "main.kprofDouble" || in[0].frames[1].fn != leafFn {
				t.Fatalf("%s reports its inlined code as %+v: the target is not what this test expects", tg.name, in)
			}
			wantFrames(t, s.User(tg.pid, addrsOf(in)), in)
		})
	}

	if libc := tg.report("libc"); len(libc) == 1 {
		t.Run("a libc function is named from the library's .dynsym", func(t *testing.T) {
			got := s.User(tg.pid, []uint64{libc[0].addr})[0]
			if got.Function != libc[0].frames[0].fn {
				t.Errorf("got %q, want %q", got.Function, libc[0].frames[0].fn)
			}
			if got.Mapping == nil || !strings.HasPrefix(filepath.Base(got.Mapping.File), "libc") {
				t.Errorf("Mapping = %+v, want libc", got.Mapping)
			}
		})
	}
}

func TestUserNamesFunctionsOfRealBinaries(t *testing.T) {
	cases := []struct {
		name   string
		target string
		lang   string
		pie    bool
	}{
		{"a Go binary is named with file and line", "go", "go", false},
		{"a stripped Go binary is named from its .gopclntab", "go-stripped", "go", false},
		{"a stripped Go binary without a .go.module section still gets its inline trees", "go-stripped-no-module-section", "go", false},
		{"a Go PIE is named at its randomized address", "go-pie", "go", true},
		{"a C PIE is named from .symtab", "c-pie", "c", true},
		{"a non-PIE C binary is named from .symtab", "c-nopie", "c", false},
		{"a C binary without .symtab is named from .dynsym", "c-dynsym", "c", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSymbolizer(t, Config{})
			tg := start(t, tc.target)
			if tc.lang == "c" && !tc.pie {
				// &qsort in a non-PIE executable is a PLT stub in the executable, not libc.
				tg.lines = removeKind(tg.lines, "libc")
			}
			if tc.pie {
				fn := map[string]string{"go": "main.kprofAlpha", "c": "kprof_alpha"}[tc.lang]
				if link := linkAddr(t, tg.path, fn); link == tg.report("entry")[0].addr {
					t.Fatalf("%s runs at its link address %#x: the PIE case is not exercised", fn, link)
				}
			}
			observe(t, s, tg.pid)
			t.Run("while it runs", func(t *testing.T) { checkTarget(t, s, tg, tc.lang) })

			tg.kill()
			if !gone(tg.pid) {
				t.Fatalf("pid %d still in /proc after kill and wait", tg.pid)
			}
			t.Run("after it exited, Forget not called", func(t *testing.T) { checkTarget(t, s, tg, tc.lang) })
		})
	}
}

func removeKind(lines []targetLine, kind string) []targetLine {
	var out []targetLine
	for _, l := range lines {
		if l.kind != kind {
			out = append(out, l)
		}
	}
	return out
}

func TestUserObservesAnUnknownPid(t *testing.T) {
	s := newSymbolizer(t, Config{})
	tg := start(t, "go")
	entry := tg.report("entry")
	wantFrames(t, s.User(tg.pid, addrsOf(entry)), entry)
	if st := s.Stats(); st.Processes != 1 {
		t.Errorf("Stats.Processes = %d, want 1", st.Processes)
	}
}

func TestUserFindsALibraryLoadedAfterObserve(t *testing.T) {
	s := newSymbolizer(t, Config{})
	clock := time.Unix(1000, 0)
	s.now = func() time.Time { return clock }
	tg := start(t, "c-pie")
	observe(t, s, tg.pid)

	if _, err := tg.stdin.Write([]byte("load\n")); err != nil {
		t.Fatal(err)
	}
	l, err := tg.readLine()
	if err != nil || l.kind != "dlopen" || l.addr == 0 || len(l.frames) != 1 {
		t.Fatalf("target did not load libm: %+v %v", l, err)
	}

	want := l.frames[0].fn
	if got := s.User(tg.pid, []uint64{l.addr})[0]; got.Mapping != nil || got.Function != "" {
		t.Errorf("within refreshInterval of Observe the maps must not be re-read; got %q in %+v", got.Function, got.Mapping)
	}
	clock = clock.Add(refreshInterval)
	got := s.User(tg.pid, []uint64{l.addr})[0]
	if got.Function != want {
		t.Errorf("after refreshInterval: got %q, want %q", got.Function, want)
	}
	if got.Mapping == nil || !strings.HasPrefix(filepath.Base(got.Mapping.File), "libm") {
		t.Errorf("Mapping = %+v, want libm", got.Mapping)
	}
	// What was known before is still known.
	entry := tg.report("entry")
	wantFrames(t, s.User(tg.pid, addrsOf(entry)), entry)
}

func TestSameFileInManyProcessesIsReadOnce(t *testing.T) {
	s := newSymbolizer(t, Config{})
	a, b := start(t, "go"), start(t, "go")
	observe(t, s, a.pid)
	before := s.Stats()
	observe(t, s, b.pid)
	after := s.Stats()
	if after.Files != before.Files || after.CacheMisses != before.CacheMisses {
		t.Errorf("second process of the same binary: Files %d→%d, misses %d→%d; want both unchanged",
			before.Files, after.Files, before.CacheMisses, after.CacheMisses)
	}
	if after.CacheHits <= before.CacheHits {
		t.Errorf("second process of the same binary: hits %d→%d, want a hit", before.CacheHits, after.CacheHits)
	}
	for _, tg := range []*target{a, b} {
		entry := tg.report("entry")
		wantFrames(t, s.User(tg.pid, addrsOf(entry)), entry)
	}
}

func TestCacheIsBoundedByFileCount(t *testing.T) {
	t.Run("three binaries with MaxFiles 2 evict, and still resolve while they run", func(t *testing.T) {
		s := newSymbolizer(t, Config{MaxFiles: 2})
		var tgs []*target
		for _, name := range []string{"go-1", "go-2", "go-3"} {
			tg := start(t, name)
			observe(t, s, tg.pid)
			tgs = append(tgs, tg)
		}
		st := s.Stats()
		if st.Files != 2 || st.CacheEvictions != 1 {
			t.Errorf("after three binaries: Files %d, CacheEvictions %d; want 2 and 1", st.Files, st.CacheEvictions)
		}
		for range 2 { // twice round: each pass evicts what the next needs
			for _, tg := range tgs {
				stack := append(tg.report("leaf"), tg.report("ret")...)
				wantFrames(t, s.User(tg.pid, addrsOf(stack)), stack)
			}
		}
		st = s.Stats()
		if st.Files > 2 || st.CacheEvictions < 3 {
			t.Errorf("after resolving all three twice: Files %d, CacheEvictions %d; want at most 2 and at least 3", st.Files, st.CacheEvictions)
		}
	})

	t.Run("an exited process whose table was evicted is read from another process of the same file", func(t *testing.T) {
		s := newSymbolizer(t, Config{MaxFiles: 2})
		dead, alive := start(t, "go-1"), start(t, "go-1")
		observe(t, s, dead.pid)
		observe(t, s, alive.pid)
		dead.kill()
		for _, name := range []string{"go-2", "go-3"} {
			observe(t, s, start(t, name).pid)
		}
		stack := append(dead.report("leaf"), dead.report("ret")...)
		wantFrames(t, s.User(dead.pid, addrsOf(stack)), stack)
	})

	t.Run("an exited process whose table was evicted and no one maps keeps its mapping, unnamed", func(t *testing.T) {
		s := newSymbolizer(t, Config{MaxFiles: 2})
		dead := start(t, "go-1")
		observe(t, s, dead.pid)
		dead.kill()
		for _, name := range []string{"go-2", "go-3"} {
			observe(t, s, start(t, name).pid)
		}
		got := s.User(dead.pid, addrsOf(dead.report("entry")))[0]
		if got.Function != "" {
			t.Errorf("got %q: the evicted table came back from somewhere", got.Function)
		}
		if got.Mapping == nil || got.Mapping.File != dead.path {
			t.Errorf("Mapping = %+v, want the binary's", got.Mapping)
		}
	})
}

func TestProcessesAreBounded(t *testing.T) {
	s := newSymbolizer(t, Config{MaxProcesses: 1})
	a, b := start(t, "go"), start(t, "go")
	observe(t, s, a.pid)
	observe(t, s, b.pid)
	if st := s.Stats(); st.Processes != 1 || st.ProcessEvictions != 1 {
		t.Errorf("Processes %d, ProcessEvictions %d; want 1 and 1", st.Processes, st.ProcessEvictions)
	}
	s.Forget(b.pid)
	if st := s.Stats(); st.Processes != 0 {
		t.Errorf("after Forget: Processes %d, want 0", st.Processes)
	}
}

func TestFilesOverMaxFileBytesAreRefused(t *testing.T) {
	s := newSymbolizer(t, Config{MaxFileBytes: 4096})
	tg := start(t, "go")
	observe(t, s, tg.pid)
	st := s.Stats()
	if st.FilesRefused == 0 || !strings.Contains(st.LastRefusal, ErrFileTooLarge.Error()) || !strings.Contains(st.LastRefusal, tg.path) {
		t.Errorf("FilesRefused %d, LastRefusal %q; want a refusal of %s naming MaxFileBytes", st.FilesRefused, st.LastRefusal, tg.path)
	}
	if st.Files != 0 {
		t.Errorf("Files = %d, want 0", st.Files)
	}
	got := s.User(tg.pid, addrsOf(tg.report("entry")))[0]
	if got.Function != "" || got.Mapping == nil || got.Mapping.File != tg.path {
		t.Errorf("got %q in %+v; want no name, and the binary's mapping", got.Function, got.Mapping)
	}
	// The refusal is remembered by file identity: observing again does not retry.
	s.Forget(tg.pid)
	observe(t, s, tg.pid)
	if again := s.Stats(); again.FilesRefused != st.FilesRefused {
		t.Errorf("FilesRefused %d → %d on a second look at the same file", st.FilesRefused, again.FilesRefused)
	}
}

func TestConcurrentUseGivesTheSameAnswers(t *testing.T) {
	// Run with -race: Observe, User, Kernel, Forget and Stats from many goroutines, with
	// a cache small enough that tables are evicted and read again meanwhile.
	s := newSymbolizer(t, Config{MaxFiles: 2})
	tgs := []*target{start(t, "go-1"), start(t, "go-2"), start(t, "c-pie")}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				tg := tgs[(g+i)%len(tgs)]
				var stack []targetLine
				if tg.report("leaf") != nil {
					stack = append(tg.report("leaf"), tg.report("ret")...)
				} else {
					stack = append(tg.report("entry"), tg.report("ret")...)
				}
				if i%7 == g%7 {
					s.Forget(tg.pid)
				}
				_ = s.Observe(tg.pid)
				got := s.User(tg.pid, addrsOf(stack))
				var want []string
				for _, l := range stack {
					for _, f := range l.frames {
						want = append(want, f.fn)
					}
				}
				var names []string
				for _, f := range got {
					names = append(names, f.Function)
				}
				if !slices.Equal(names, want) {
					select {
					case errs <- fmt.Sprintf("%s: got %q, want %q", tg.name, names, want):
					default:
					}
				}
				s.Kernel([]uint64{0xffffffff81000000})
				s.Stats()
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if st := s.Stats(); st.Files > 2 {
		t.Errorf("Files = %d, over MaxFiles 2", st.Files)
	}
}
