//go:build linux

package loader

import (
	"context"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kprof/kprof/internal/agent/bpf"
	"github.com/kprof/kprof/internal/agent/symbolize"
	"github.com/kprof/kprof/internal/agent/unwind"
)

// fakeSampler records what the Loader tells it, like the kernel's maps would.
type fakeSampler struct {
	mu       sync.Mutex
	capacity uint32
	rows     map[uint32]unwind.Row
	procs    map[uint32][]bpf.Mapping
	unknown  []uint32
	deleted  []uint32
	setErr   error
}

func newFakeSampler(capacity uint32) *fakeSampler {
	return &fakeSampler{capacity: capacity, rows: make(map[uint32]unwind.Row), procs: make(map[uint32][]bpf.Mapping)}
}

func (f *fakeSampler) RowCapacity() uint32 { return f.capacity }

func (f *fakeSampler) WriteRows(off uint32, rows []unwind.Row) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if uint64(off)+uint64(len(rows)) > uint64(f.capacity) {
		return errors.New("rows beyond capacity")
	}
	for i, r := range rows {
		f.rows[off+uint32(i)] = r
	}
	return nil
}

func (f *fakeSampler) SetProcess(tgid uint32, maps []bpf.Mapping) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.setErr != nil {
		return f.setErr
	}
	if len(maps) > bpf.MaxMappings {
		return errors.New("too many mappings")
	}
	if !slices.IsSortedFunc(maps, func(a, b bpf.Mapping) int { return int(a.Start>>12) - int(b.Start>>12) }) {
		return errors.New("mappings not sorted")
	}
	f.procs[tgid] = slices.Clone(maps)
	return nil
}

func (f *fakeSampler) DeleteProcess(tgid uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.procs, tgid)
	f.deleted = append(f.deleted, tgid)
	return nil
}

func (f *fakeSampler) TakeUnknown() ([]uint32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.unknown
	f.unknown = nil
	return u, nil
}

func (f *fakeSampler) report(tgids ...int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, t := range tgids {
		f.unknown = append(f.unknown, uint32(t))
	}
}

func (f *fakeSampler) mappings(tgid int) ([]bpf.Mapping, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.procs[uint32(tgid)]
	return m, ok
}

// fakeBuild gives every file a table of rows rows (the first at the file's first
// executable section) and counts the builds.
type fakeBuild struct {
	mu     sync.Mutex
	rows   int
	builds int
	err    error
}

func (b *fakeBuild) build(f *elf.File) (*unwind.Table, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.builds++
	if b.err != nil {
		return nil, b.err
	}
	t := &unwind.Table{}
	for i := range b.rows {
		t.Rows = append(t.Rows, unwind.Row{PC: uint64(0x1000 + 16*i), CFA: unwind.CFARSP, CFAOffset: 8})
	}
	t.End = t.Rows[len(t.Rows)-1].PC // no terminating row: exactly b.rows rows
	return t, nil
}

func (b *fakeBuild) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.builds
}

// startSleep starts a C program (coreutils sleep) that runs until the test ends.
func startSleep(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// Wait for exec and the dynamic loader: sleep's maps name libc.
	deadline := time.Now().Add(10 * time.Second)
	for !mapsMention(cmd.Process.Pid, "libc.so") {
		if time.Now().After(deadline) {
			t.Fatal("sleep's mappings never appeared")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return cmd
}

func mapsMention(pid int, s string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/maps")
	return err == nil && strings.Contains(string(b), s)
}

type testLoader struct {
	*Loader
	s   *fakeSampler
	b   *fakeBuild
	reg *prometheus.Registry
}

func newTestLoader(t *testing.T, capacity uint32, rows int, edit func(*Config)) testLoader {
	t.Helper()
	tl := testLoader{s: newFakeSampler(capacity), b: &fakeBuild{rows: rows}, reg: prometheus.NewRegistry()}
	cfg := Config{Sampler: tl.s, Build: tl.b.build, Registerer: tl.reg, Name: "cpu", ExitCheckEvery: time.Nanosecond, ReloadEvery: time.Nanosecond}
	if edit != nil {
		edit(&cfg)
	}
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tl.Loader = l
	return tl
}

func (tl testLoader) fp(reason string) float64 { return testutil.ToFloat64(tl.metrics.fp[reason]) }

func TestLoaderLoadsAProcessWithTheTablesOfItsFiles(t *testing.T) {
	tl := newTestLoader(t, 1<<16, 10, nil)
	cmd := startSleep(t)
	pid := cmd.Process.Pid
	tl.s.report(pid)
	tl.Tick(context.Background())

	maps, ok := tl.s.mappings(pid)
	if !ok {
		t.Fatal("no SetProcess for the reported process")
	}
	ems, err := symbolize.ReadExecMappings("/proc", int32(pid))
	if err != nil {
		t.Fatal(err)
	}
	var withRows int
	for _, m := range maps {
		if m.RowLen == 0 {
			continue
		}
		withRows++
		if m.RowLen != 10 {
			t.Errorf("mapping %#x-%#x: %d rows, want 10", m.Start, m.End, m.RowLen)
		}
		// The bias maps the mapping's start to its file's address: the PT_LOAD
		// segment's vaddr plus the distance from the segment's offset.
		i := slices.IndexFunc(ems, func(e symbolize.ExecMapping) bool { return e.Start == m.Start })
		if i < 0 {
			t.Fatalf("mapping %#x-%#x is not in the process's maps", m.Start, m.End)
		}
		checkBias(t, ems[i], m)
	}
	// sleep, libc and ld.so: three files with call frame information.
	if withRows < 3 {
		t.Errorf("%d mappings with rows, want at least sleep, libc and ld.so: %+v", withRows, maps)
	}
	st := tl.Stats()
	if st.Processes != 1 || st.RowsInUse != uint32(10*withRows) || st.Tables != withRows {
		t.Errorf("stats %+v, want 1 process and %d tables of 10 rows", st, withRows)
	}
	if got := testutil.ToFloat64(tl.metrics.tablesLoaded); got != float64(withRows) {
		t.Errorf("tables loaded metric %v, want %d", got, withRows)
	}
}

// checkBias checks that pc - Bias is the file's virtual address of the byte at pc.
func checkBias(t *testing.T, em symbolize.ExecMapping, m bpf.Mapping) {
	t.Helper()
	path := em.Path
	ef, err := elf.Open(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer ef.Close()
	for _, p := range ef.Progs {
		if p.Type != elf.PT_LOAD || em.Offset < p.Off&^(pageSize-1) || em.Offset >= p.Off+p.Filesz {
			continue
		}
		// The byte at file offset p.Off+1 is mapped at Start + (p.Off+1 - Offset).
		pc := m.Start + (p.Off + 1 - em.Offset)
		if got, want := pc-m.Bias, p.Vaddr+1; got != want {
			t.Errorf("%s: pc %#x - bias %#x = %#x, want vaddr %#x", path, pc, m.Bias, got, want)
		}
		return
	}
	t.Errorf("%s: no PT_LOAD segment holds offset %#x", path, em.Offset)
}

func TestLoaderBuildsATableOncePerFileForEveryProcess(t *testing.T) {
	tl := newTestLoader(t, 1<<16, 10, nil)
	a, b := startSleep(t), startSleep(t)
	tl.s.report(a.Process.Pid, b.Process.Pid)
	tl.Tick(context.Background())
	builds := tl.b.count()
	tl.s.report(a.Process.Pid) // seen unknown again: reloaded, nothing rebuilt
	tl.Tick(context.Background())
	if got := tl.b.count(); got != builds || builds < 3 {
		t.Errorf("%d builds for two processes of the same files, %d after a reload; want one per file (at least 3)", builds, got)
	}
	st := tl.Stats()
	if st.Processes != 2 || st.RowsInUse != uint32(10*builds) {
		t.Errorf("stats %+v, want 2 processes sharing %d tables of 10 rows", st, builds)
	}

	// One exits: its tables stay in use by the other.
	_ = a.Process.Kill()
	_ = a.Wait()
	tl.Tick(context.Background())
	st = tl.Stats()
	if st.Processes != 1 || st.RowsInUse != uint32(10*builds) || st.CachedTables != 0 {
		t.Errorf("after one exited: stats %+v, want 1 process still using every table", st)
	}
	if _, ok := tl.s.mappings(a.Process.Pid); ok {
		t.Error("the exited process is still in the sampler")
	}
	// Both exited: the tables go to the LRU, still in the kernel.
	_ = b.Process.Kill()
	_ = b.Wait()
	tl.Tick(context.Background())
	st = tl.Stats()
	if st.Processes != 0 || st.RowsInUse != 0 || st.CachedTables != builds || st.RowsCached != uint32(10*builds) {
		t.Errorf("after both exited: stats %+v, want no process and %d cached tables", st, builds)
	}
	// A new process of the same files uses the cached tables.
	c := startSleep(t)
	tl.s.report(c.Process.Pid)
	tl.Tick(context.Background())
	if got := tl.b.count(); got != builds {
		t.Errorf("%d builds after a third process, want the cached %d", got, builds)
	}
	if st := tl.Stats(); st.CachedTables != 0 || st.RowsInUse != uint32(10*builds) {
		t.Errorf("stats %+v: want the cached tables in use again", st)
	}
}

func TestLoaderGivesFramePointers(t *testing.T) {
	t.Run("to a Go binary without building its table", func(t *testing.T) {
		tl := newTestLoader(t, 1<<16, 10, nil)
		tl.s.report(os.Getpid()) // the test binary is Go
		tl.Tick(context.Background())
		maps, ok := tl.s.mappings(os.Getpid())
		if !ok {
			t.Fatal("not loaded")
		}
		exe, _ := os.Executable()
		ems, _ := symbolize.ReadExecMappings("/proc", int32(os.Getpid()))
		for _, em := range ems {
			if em.Path != exe {
				continue
			}
			i := slices.IndexFunc(maps, func(m bpf.Mapping) bool { return m.Start <= em.Start && em.Start < m.End })
			if i < 0 || maps[i].RowLen != 0 {
				t.Errorf("the Go binary's mapping %#x is not on frame pointers: %+v", em.Start, maps)
			}
		}
		if tl.fp(ReasonGo) == 0 {
			t.Error("no mapping counted with reason go")
		}
	})
	t.Run("when there is no room, and uses the room exited processes leave", func(t *testing.T) {
		tl := newTestLoader(t, 25, 10, nil) // two tables fit
		a := startSleep(t)
		tl.s.report(a.Process.Pid)
		tl.Tick(context.Background())
		if tl.fp(ReasonNoRoom) == 0 {
			t.Fatal("no mapping counted with reason no_room")
		}
		maps, _ := tl.s.mappings(a.Process.Pid)
		if n := countRows(maps); n != 2 {
			t.Errorf("%d mappings with rows, want the 2 that fit: %+v", n, maps)
		}
		_ = a.Process.Kill()
		_ = a.Wait()
		tl.Tick(context.Background()) // a's tables go to the LRU
		b := startSleep(t)
		tl.s.report(b.Process.Pid)
		tl.Tick(context.Background())
		maps, _ = tl.s.mappings(b.Process.Pid)
		if n := countRows(maps); n != 2 {
			t.Errorf("%d mappings with rows after the first process exited, want 2", n)
		}
		if st := tl.Stats(); st.RowsInUse+st.RowsCached > st.RowCapacity {
			t.Errorf("stats %+v: more rows than capacity", st)
		}
	})
	t.Run("when the table cannot be built, counted", func(t *testing.T) {
		tl := newTestLoader(t, 1<<16, 10, nil)
		tl.b.err = errors.New("no .eh_frame")
		a := startSleep(t)
		tl.s.report(a.Process.Pid)
		tl.Tick(context.Background())
		maps, _ := tl.s.mappings(a.Process.Pid)
		if n := countRows(maps); n != 0 {
			t.Errorf("%d mappings with rows, want none", n)
		}
		if tl.fp(ReasonNoTable) == 0 || testutil.ToFloat64(tl.metrics.buildErrors) == 0 {
			t.Error("no mapping counted with reason no_table, or no build error counted")
		}
		builds := tl.b.count()
		tl.s.report(a.Process.Pid)
		tl.Tick(context.Background())
		if tl.b.count() != builds {
			t.Error("a failed build was tried again")
		}
	})
	t.Run("to the smallest tables beyond MaxMappings", func(t *testing.T) {
		tl := newTestLoader(t, 1<<16, 10, func(c *Config) { c.MaxMappings = 2 })
		a := startSleep(t)
		tl.s.report(a.Process.Pid)
		tl.Tick(context.Background())
		maps, ok := tl.s.mappings(a.Process.Pid)
		if !ok || len(maps) > 2 {
			t.Fatalf("%d mappings, want at most 2: %+v", len(maps), maps)
		}
		if tl.fp(ReasonTooManyMappings) == 0 {
			t.Error("no mapping counted with reason too_many_mappings")
		}
		if st := tl.Stats(); st.RowsInUse != uint32(10*countRows(maps)) {
			t.Errorf("stats %+v: the dropped mappings' tables still count as in use", st)
		}
	})
}

func countRows(maps []bpf.Mapping) int {
	n := 0
	for _, m := range maps {
		if m.RowLen > 0 {
			n++
		}
	}
	return n
}

func TestLoaderRateLimitsReloads(t *testing.T) {
	tl := newTestLoader(t, 1<<16, 10, func(c *Config) { c.ReloadEvery = time.Hour })
	a := startSleep(t)
	tl.s.report(a.Process.Pid)
	tl.Tick(context.Background())
	tl.s.mu.Lock()
	delete(tl.s.procs, uint32(a.Process.Pid)) // to see whether it is set again
	tl.s.mu.Unlock()
	tl.s.report(a.Process.Pid)
	tl.Tick(context.Background())
	if _, ok := tl.s.mappings(a.Process.Pid); ok {
		t.Error("reloaded within ReloadEvery")
	}
	now := time.Now().Add(2 * time.Hour)
	tl.now = func() time.Time { return now }
	tl.s.report(a.Process.Pid)
	tl.Tick(context.Background())
	if _, ok := tl.s.mappings(a.Process.Pid); !ok {
		t.Error("not reloaded after ReloadEvery")
	}
}

func TestLoaderBoundsTheWorkOfATick(t *testing.T) {
	tl := newTestLoader(t, 1<<16, 10, func(c *Config) { c.MaxLoadsPerTick = 2; c.MaxPending = 3 })
	var pids []int
	for range 4 {
		pids = append(pids, startSleep(t).Process.Pid)
	}
	tl.s.report(pids...)
	tl.Tick(context.Background())
	if st := tl.Stats(); st.Processes != 2 {
		t.Fatalf("%d processes loaded in one tick, want MaxLoadsPerTick 2", st.Processes)
	}
	tl.Tick(context.Background())
	if st := tl.Stats(); st.Processes != 3 {
		t.Errorf("%d processes loaded after two ticks, want 3 (the fourth was beyond MaxPending)", st.Processes)
	}
}

func TestLoaderPassesExitedProcessesWithoutSpendingLoads(t *testing.T) {
	tl := newTestLoader(t, 1<<16, 10, func(c *Config) { c.MaxLoadsPerTick = 1 })
	// Processes that ran and exited before the loader's turn, queued ahead of
	// one that still runs: as on a node that runs thousands of short ones.
	var gone []int
	for range 50 {
		cmd := exec.Command("true")
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		gone = append(gone, cmd.Process.Pid)
	}
	live := startSleep(t).Process.Pid
	tl.s.report(append(gone, live)...)
	tl.Tick(context.Background())
	if _, ok := tl.s.mappings(live); !ok {
		t.Fatalf("the running process behind %d exited ones was not loaded in one tick of MaxLoadsPerTick 1; stats %+v", len(gone), tl.Stats())
	}
	if got := testutil.ToFloat64(tl.metrics.processesGone); got != float64(len(gone)) {
		t.Errorf("kprof_agent_unwind_processes_exited_before_load_total = %v, want %d", got, len(gone))
	}
}

func TestLoaderStartsAndShutsDown(t *testing.T) {
	tl := newTestLoader(t, 1<<16, 10, func(c *Config) { c.Every = time.Millisecond })
	if err := tl.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown without Start: %v", err)
	}
	tl2 := newTestLoader(t, 1<<16, 10, func(c *Config) { c.Every = time.Millisecond })
	if err := tl2.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	a := startSleep(t)
	tl2.s.report(a.Process.Pid)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, ok := tl2.s.mappings(a.Process.Pid); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the loop never loaded the reported process")
		}
		time.Sleep(time.Millisecond)
	}
	for range 2 {
		if err := tl2.Shutdown(context.Background()); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	}
}

func TestLoaderSharesMetricsBetweenCollectors(t *testing.T) {
	reg := prometheus.NewRegistry()
	for _, name := range []string{"cpu", "wall"} {
		if _, err := New(Config{Sampler: newFakeSampler(10), Registerer: reg, Name: name}); err != nil {
			t.Fatalf("second loader on one registry: %v", err)
		}
	}
	n, err := testutil.GatherAndCount(reg, "kprof_agent_unwind_rows_capacity")
	if err != nil || n != 2 {
		t.Errorf("%d rows_capacity series (%v), want one per config", n, err)
	}
}

func TestConfigValidateNamesTheBadFields(t *testing.T) {
	cfg := Config{ProcRoot: "proc", Every: -1, MaxMappings: bpf.MaxMappings + 1, MaxFileBytes: -1}
	err := cfg.Validate()
	for _, field := range []string{"Sampler", "ProcRoot", "Every", "MaxMappings", "MaxFileBytes"} {
		if err == nil || !strings.Contains(err.Error(), field+":") {
			t.Errorf("Validate() = %v, want it to name %s", err, field)
		}
	}
}

func TestLoaderWritesTheRealTablesWithTheirEnd(t *testing.T) {
	s := newFakeSampler(1 << 22)
	l, err := New(Config{Sampler: s, ExitCheckEvery: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	a := startSleep(t)
	s.report(a.Process.Pid)
	l.Tick(context.Background())
	maps, ok := s.mappings(a.Process.Pid)
	if !ok || countRows(maps) < 3 {
		t.Fatalf("mappings %+v: want sleep, libc and ld.so with rows", maps)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range maps {
		if m.RowLen == 0 {
			continue
		}
		first, last := s.rows[m.RowOff], s.rows[m.RowOff+m.RowLen-1]
		if first.CFA == unwind.CFANone || last.CFA != unwind.CFANone || last.PC <= first.PC {
			t.Errorf("mapping %#x: rows from %+v to %+v; want rules ending in a CFANone row at the table's end", m.Start, first, last)
		}
	}
}
