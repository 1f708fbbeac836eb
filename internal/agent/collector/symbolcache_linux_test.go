//go:build linux

package collector

import (
	"debug/elf"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/kprof/kprof/internal/agent/bpf"
	"github.com/kprof/kprof/internal/agent/collection"
	"github.com/kprof/kprof/internal/agent/symbolize"
)

// sameSampler hands out the same samples at every Drain: processes that keep running.
type sameSampler struct {
	samples []bpf.RawSample
}

func (s *sameSampler) Drain() ([]bpf.RawSample, bpf.Stats, error) {
	return s.samples, bpf.Stats{Samples: uint64(len(s.samples))}, nil
}

func (s *sameSampler) Close() error { return nil }

// mappedFuncs maps the Go binary at path executable into this process, as the loader
// would (file offset 0, so addresses place in the file as in a process running it),
// and returns the address inside each named function there. The mapping goes at the
// end of the test.
func mappedFuncs(t *testing.T, path string, names []string) map[string]uint64 {
	t.Helper()
	ef, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	text := ef.Section(".text")
	syms, err := ef.Symbols()
	if text == nil || err != nil {
		t.Fatalf("%s: no .text or symbols (%v): pick another Go binary", path, err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ|syscall.PROT_EXEC, syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatalf("mapping %s executable: %v", path, err)
	}
	t.Cleanup(func() { syscall.Munmap(mem) })
	base := uint64(uintptr(unsafe.Pointer(unsafe.SliceData(mem))))
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	addrs := make(map[string]uint64, len(names))
	for _, s := range syms {
		if want[s.Name] && elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Value >= text.Addr && s.Value < text.Addr+text.Size {
			addrs[s.Name] = base + s.Value - text.Addr + text.Offset + 4
		}
	}
	if len(addrs) != len(names) {
		t.Fatalf("%s: found %d of the functions %v", path, len(addrs), names)
	}
	return addrs
}

// goTools are two large Go binaries of this machine with distinct build IDs.
func goTools(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOROOT", "GOTOOLDIR").Output()
	if err != nil {
		t.Fatalf("go env: %v", err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		t.Fatalf("go env printed %q", out)
	}
	return []string{filepath.Join(f[0], "bin", "go"), filepath.Join(f[1], "compile")}
}

// An interval's stacks read each symbol table at most once, and the next interval of
// the same processes reads none, even when the cache cannot hold the tables of every
// process sampled: the stacks of two large binaries, in turn, used to evict each
// other's table from the least-recently-used cache and read it again for every stack
// (0.5 to 2 s each for a -race test binary on a busy node), so a collector published
// its intervals seconds late.
func TestIntervalsReadEachSymbolTableOnce(t *testing.T) {
	funcs := []string{"runtime.main", "runtime.mallocgc", "runtime.schedule", "runtime.findRunnable",
		"runtime.gcStart", "runtime.newproc", "runtime.goexit1", "runtime.park_m"}
	pid := uint32(os.Getpid())
	var raw []bpf.RawSample
	var names []string
	tools := goTools(t)
	addrs := [][]uint64{nil, nil}
	for i, path := range tools {
		m := mappedFuncs(t, path, funcs)
		for _, fn := range funcs {
			addrs[i] = append(addrs[i], m[fn])
		}
	}
	for j, fn := range funcs { // the two binaries in turn
		for i := range tools {
			raw = append(raw, bpf.RawSample{TGID: pid, PID: pid, User: []uint64{addrs[i][j]}, Count: 1})
			names = append(names, fn)
		}
	}
	// A cache of one table: what a node's cache is to the tables of all its busy
	// processes.
	sym, err := symbolize.New(symbolize.Config{MaxFiles: 1})
	if err != nil {
		t.Fatal(err)
	}
	c := newCollector(Config{
		Collection: collection.CollectionConfig{Name: "cpu", Version: 1, Event: "cpu-clock", Frequency: 99, Interval: time.Minute},
		Symbolizer: sym,
		Publish:    (&events{}).publish,
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, &sameSampler{samples: raw})
	if err := c.drainPending(); err != nil { // observes this process, reading its tables
		t.Fatal(err)
	}
	for interval, maxReads := range []int{len(tools), 0} {
		before := sym.Stats()
		ev, err := c.Collect()
		if err != nil {
			t.Fatal(err)
		}
		reads := sym.Stats().CacheMisses - before.CacheMisses
		if len(ev.Samples) != len(raw) {
			t.Fatalf("interval %d: %d samples, want %d", interval, len(ev.Samples), len(raw))
		}
		for i, s := range ev.Samples {
			if len(s.Frames) == 0 || s.Frames[len(s.Frames)-1].Function != names[i] {
				t.Errorf("interval %d, sample %d (%s of %s): frames %+v, want %s", interval, i, names[i], tools[i%2], s.Frames, names[i])
			}
		}
		if reads > uint64(maxReads) {
			t.Errorf("interval %d: its %d stacks read symbol tables %d times, want at most %d", interval, len(raw), reads, maxReads)
		}
	}
	if err := c.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := sym.Stats(); st.TablesHeld != 0 {
		t.Errorf("%d tables still held after Shutdown, want 0", st.TablesHeld)
	}
}
