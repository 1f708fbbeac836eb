package symbolize

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/kprof/kprof/internal/agent/profile"
)

// refreshInterval is the least time between two re-reads of a process's maps prompted
// by an address outside its known mappings (a library loaded after Observe, or a bad
// address from a broken stack walk, which would otherwise re-read the maps every time).
const refreshInterval = time.Second

// Stats counts what the Symbolizer did since New.
type Stats struct {
	// Processes whose mappings are known now; ProcessEvictions were dropped to stay
	// within MaxProcesses before Forget was called for them.
	Processes        int
	ProcessEvictions uint64
	// Files is the number of symbol tables cached now. A hit is a symbol table found in
	// the cache when needed; a miss had to be read from a file (or could not be); an
	// eviction dropped the least recently used table to stay within MaxFiles and
	// MaxCacheBytes. CacheBytes is the estimated heap of the cached tables.
	// TablesOversized counts tables read but not cached because each alone was larger
	// than MaxCacheBytes (they served the lookup that read them).
	Files           int
	CacheHits       uint64
	CacheMisses     uint64
	CacheEvictions  uint64
	CacheBytes      int64
	TablesOversized uint64
	// TablesHeld is the number of tables open Batches hold now (in the cache or not).
	TablesHeld int
	// FilesRefused counts files whose symbols could not be read: too large
	// (MaxFileBytes), not ELF or malformed, no symbols at all, or not openable.
	// LastRefusal says why for the latest one.
	FilesRefused uint64
	LastRefusal  string
	// KernelSymbols is the number of kernel text symbols loaded. KernelRestricted is
	// true when /proc/kallsyms hid its addresses (kptr_restrict): kernel frames are then
	// left unnamed. KernelError is the last error loading kallsyms, "" if none.
	KernelSymbols    int
	KernelRestricted bool
	KernelError      string
	// PerfMapsRead counts reads of processes' perf maps (the first, and each after
	// the map grew); PerfMapSymbols the symbols they gave; PerfMapLinesSkipped the
	// lines skipped as malformed, empty or too long; PerfMapsTruncated the maps left
	// unread past MaxPerfMapBytes or MaxPerfMapEntries. JITFrames counts frames named
	// from a perf map.
	PerfMapsRead        uint64
	PerfMapSymbols      uint64
	PerfMapLinesSkipped uint64
	PerfMapsTruncated   uint64
	JITFrames           uint64
	// DebugFiles counts stripped files (no .symtab) named from a separate debug file;
	// DebugFilesMissing those for which none was found; DebugFilesRejected the
	// candidate debug files refused: another build ID, a CRC other than the
	// .gnu_debuglink's, malformed or without symbols.
	DebugFiles         uint64
	DebugFilesMissing  uint64
	DebugFilesRejected uint64
}

// Symbolizer resolves addresses of host processes and of the kernel. It is safe for
// concurrent use.
type Symbolizer struct {
	cfg Config
	log *slog.Logger
	now func() time.Time

	mu sync.Mutex
	// procs are the processes observed, by pid.
	procs *lru[int32, *process]
	// tables are the symbol tables by objHeader.key (build ID).
	tables *lru[string, *symTable]
	// headers are the headers (or why there is none) of files by stat identity, so a
	// file seen again is not parsed again, nor a refused one retried.
	headers *lru[fileID, headerResult]
	// loading has one entry per table being read, so concurrent needs read it once.
	loading map[string]*loadCall
	// big is the one table larger than MaxCacheBytes kept beside the cache while it
	// is in use: without it, every stack of a process of a huge binary (a
	// kube-apiserver's table is ~84 MiB) would read its symbols again.
	big bigTable
	// held are the tables open Batches use, by key, with how many hold each: a table
	// the cache evicted while a Batch still uses it is found here, not read again.
	held  map[string]*heldTable
	stats Stats

	kmu    sync.Mutex
	kernel *kernelTable // nil until loaded, or when it could not be
	kdone  bool         // a load was attempted
}

// bigTableIdle is how long the oversized table is kept after its last lookup.
const bigTableIdle = 30 * time.Second

type bigTable struct {
	key      string
	t        *symTable
	lastUsed time.Time
}

type heldTable struct {
	t    *symTable
	refs int
}

type headerResult struct {
	hdr *objHeader
	err error
}

type loadCall struct {
	done   chan struct{}
	t      *symTable
	cached bool
}

// New checks cfg and builds a Symbolizer. Nothing is read until it is used.
func New(cfg Config) (*Symbolizer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("symbolize config: %w", err)
	}
	cfg.SetDefaults()
	return &Symbolizer{
		cfg:     cfg,
		log:     cfg.Logger.With("logger", "symbolize"),
		now:     time.Now,
		procs:   newLRU[int32, *process](cfg.MaxProcesses),
		tables:  newSizedLRU[string, *symTable](cfg.MaxFiles, cfg.MaxCacheBytes, (*symTable).sizeBytes),
		headers: newLRU[fileID, headerResult](4 * max(cfg.MaxFiles, 256)),
		loading: make(map[string]*loadCall),
		held:    make(map[string]*heldTable),
	}, nil
}

// Observe captures the executable mappings of pid and reads the symbol tables of their
// files now, so that the process can be symbolized after it exits. Call it when a pid
// is first seen; it is a map lookup when pid is already known. A file that cannot be
// read is counted in Stats, not returned: the process's other files are still used.
func (s *Symbolizer) Observe(pid int32) error {
	_, err := s.observe(pid)
	return err
}

// Forget drops what is known of pid. Call it once a pid has gone and its samples were
// symbolized; a pid reused later is then observed afresh. It also belongs after an exec.
func (s *Symbolizer) Forget(pid int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.procs.remove(pid)
}

// User symbolizes a user stack of pid, leaf first. Every address but the leaf is a
// return address and is looked up one byte earlier, so a call is attributed to its
// caller's line (and a call that ends a function to that function).
//
// Each address gives one frame, except an address in inlined Go code, which gives one
// frame per function: the inlined function first, then each function it was inlined
// into, all with the same Address (pprof's Location with several Lines); so
// len(frames) >= len(addrs). An unknown address gives one frame with Function "", with
// a Mapping when the address is mapped. A pid not observed yet is observed now. Frames
// share Mapping pointers: do not modify them.
//
// To symbolize many stacks at once (a profile interval), use a Batch: User alone
// may read a table again for each stack while the cache is too small for the tables
// in use.
func (s *Symbolizer) User(pid int32, addrs []uint64) []profile.Frame {
	b := s.NewBatch()
	defer b.Close()
	return b.User(pid, addrs)
}

// Batch symbolizes the stacks of one profile interval. Every symbol table it uses
// is held from its first use until Close, beyond the cache's bounds, and is found
// there by the other open Batches too: so while they are open each table is read at
// most once, however many processes, stacks and collectors need it. Without it, a
// node whose tables in use exceed MaxCacheBytes (a few large Go binaries: a -race
// test binary's table is ~50 MiB) evicts, in least-recently-used order, the very
// table the next stack needs, and reads tables again and again within one interval.
// A Batch is not safe for concurrent use; Close it when its stacks are symbolized.
type Batch struct {
	s *Symbolizer
	// tables are the tables this Batch used, by key; nil when no source could give one.
	tables map[string]*symTable
	closed bool
	// touched are the tables lookups used since the pages were last given back, and
	// pid the process they were for: the pages are given back when the pid changes,
	// so that what a busy node's lookups touch does not add up within an interval.
	touched map[*symTable]struct{}
	pid     int32
}

// NewBatch returns an open Batch.
func (s *Symbolizer) NewBatch() *Batch {
	return &Batch{s: s, tables: make(map[string]*symTable), touched: make(map[*symTable]struct{})}
}

// Close lets go of the tables the Batch held: those the cache dropped meanwhile are
// freed once no other open Batch holds them, and the pages of their mapped files that
// lookups touched are given back. It is idempotent; do not use the Batch afterwards.
func (b *Batch) Close() {
	if b.closed {
		return
	}
	b.closed = true
	s := b.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, t := range b.tables {
		if t == nil {
			continue
		}
		t.dropPages()
		if h, ok := s.held[key]; ok {
			if h.refs--; h.refs == 0 {
				delete(s.held, key)
			}
		}
	}
	clear(b.tables)
	clear(b.touched)
}

// ReleasePages gives back the pages of the mapped symbol tables that the Batch's
// lookups touched (they are read again from the page cache when touched again); the
// Batch stays usable. User does it when the pid changes; call it once an interval is
// symbolized: the Batch itself is kept until the next interval, and the pages of its
// last process would otherwise stay in the RSS.
func (b *Batch) ReleasePages() {
	for t := range b.touched {
		t.dropPages()
	}
	clear(b.touched)
}

// User is Symbolizer.User within the Batch.
func (b *Batch) User(pid int32, addrs []uint64) []profile.Frame {
	s := b.s
	if pid != b.pid {
		b.ReleasePages()
		b.pid = pid
	}
	frames := make([]profile.Frame, 0, len(addrs))
	p := s.process(pid)
	refreshed := false
	var found []symFrame
	for i, a := range addrs {
		frame := profile.Frame{Address: a}
		pc := a
		if i > 0 && pc > 0 {
			pc--
		}
		var m *mapping
		if p != nil {
			m = p.find(pc)
			if m == nil && !refreshed {
				refreshed = true
				if np := s.refresh(p); np != nil {
					p = np
					m = p.find(pc)
				}
			}
		}
		found = found[:0]
		if m != nil {
			frame.Mapping = m.prof
			found = b.resolve(m, p.pid, pc, found)
			if len(found) == 0 {
				if name, ok := s.jitName(p, m, pc); ok {
					found = append(found, symFrame{fn: name})
				}
			}
		}
		if len(found) == 0 {
			frames = append(frames, frame)
			continue
		}
		for _, f := range found {
			frame.Function, frame.File, frame.Line = f.fn, f.file, f.line
			frames = append(frames, frame)
		}
	}
	return frames
}

// Kernel is Symbolizer.Kernel: the kernel's table is loaded once and always kept.
func (b *Batch) Kernel(addrs []uint64) []profile.Frame { return b.s.Kernel(addrs) }

// resolve appends the functions at pc in mapping m of pid to out.
func (b *Batch) resolve(m *mapping, pid int32, pc uint64, out []symFrame) []symFrame {
	if m.hdr == nil {
		return out
	}
	v, ok := m.hdr.vaddr(pc - m.start + m.offset)
	if !ok {
		return out
	}
	t, ok := b.tables[m.hdr.key]
	if !ok {
		t, _ = b.s.table(m.hdr, pid, m.procMapping)
		b.hold(m.hdr.key, t)
	}
	if t == nil {
		return out
	}
	if len(t.maps) > 0 {
		b.touched[t] = struct{}{}
	}
	return t.lookup(v, out)
}

// hold records that the Batch uses t (nil: no source could give the table of key).
func (b *Batch) hold(key string, t *symTable) {
	b.tables[key] = t
	if t == nil || b.closed {
		return
	}
	s := b.s
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.held[key]
	if !ok {
		h = &heldTable{t: t}
		s.held[key] = h
	}
	h.refs++
}

// Kernel symbolizes a kernel stack, leaf first, from /proc/kallsyms (read on first use;
// see ReloadKernel). Return addresses (all but the leaf) are looked up one byte earlier.
// When kallsyms is unreadable or hidden by kptr_restrict every Function is "" (see Stats).
func (s *Symbolizer) Kernel(addrs []uint64) []profile.Frame {
	k := s.kernelTable()
	frames := make([]profile.Frame, len(addrs))
	for i, a := range addrs {
		frames[i] = profile.Frame{Address: a, Kernel: true}
		if k == nil {
			continue
		}
		pc := a
		if i > 0 && pc > 0 {
			pc--
		}
		frames[i].Function = k.lookup(pc)
	}
	return frames
}

// ReloadKernel reads /proc/kallsyms again (after a module was loaded, or once
// kptr_restrict allows it). On error the previous table is dropped: an error wrapping
// ErrKernelRestricted means the addresses are hidden from this process.
func (s *Symbolizer) ReloadKernel() error {
	s.kmu.Lock()
	defer s.kmu.Unlock()
	return s.loadKernelLocked()
}

func (s *Symbolizer) kernelTable() *kernelTable {
	s.kmu.Lock()
	defer s.kmu.Unlock()
	if !s.kdone {
		_ = s.loadKernelLocked() // reported through Stats and the log
	}
	return s.kernel
}

func (s *Symbolizer) loadKernelLocked() error {
	s.kdone = true
	path := filepath.Join(s.cfg.ProcRoot, "kallsyms")
	k, err := func() (*kernelTable, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return parseKallsyms(f)
	}()
	s.kernel = k
	restricted := errors.Is(err, ErrKernelRestricted)
	s.mu.Lock()
	s.stats.KernelRestricted, s.stats.KernelError, s.stats.KernelSymbols = restricted, "", 0
	if err != nil {
		s.stats.KernelError = err.Error()
	} else {
		s.stats.KernelSymbols = k.len()
	}
	s.mu.Unlock()
	switch {
	case restricted:
		s.log.Info("WARNING: kernel frames will not be symbolized: /proc/kallsyms hides addresses (kernel.kptr_restrict); run with CAP_SYSLOG and kptr_restrict<=1",
			"path", path)
		return fmt.Errorf("load %s: %w", path, err)
	case err != nil:
		s.log.Error("kernel frames will not be symbolized", "err", err, "path", path)
		return fmt.Errorf("load %s: %w", path, err)
	}
	s.log.Debug("kernel symbols loaded", "path", path, "symbols", k.len())
	return nil
}

// Stats returns the counters now.
func (s *Symbolizer) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Processes = s.procs.len()
	st.ProcessEvictions = s.procs.evicted
	st.Files = s.tables.len()
	st.CacheEvictions = s.tables.evicted
	st.CacheBytes = s.tables.bytes
	st.TablesHeld = len(s.held)
	return st
}

// refused records that a file's symbols could not be read. Called with s.mu held.
func (s *Symbolizer) refused(pid int32, path string, err error) {
	s.stats.FilesRefused++
	s.stats.LastRefusal = fmt.Sprintf("pid %d %s: %v", pid, path, err)
	s.log.Debug("file not symbolized", "pid", pid, "file", path, "reason", err.Error())
}

// table returns the symbol table for hdr, reading it on a miss from the file of m in
// pid, or else from any other known process that maps the same file. nil when no
// source could be read. cached is false for a table too large for the cache: it is
// the caller's to use for this lookup only.
func (s *Symbolizer) table(hdr *objHeader, pid int32, m procMapping) (t *symTable, cached bool) {
	s.mu.Lock()
	if t, ok := s.tables.get(hdr.key); ok {
		s.stats.CacheHits++
		s.mu.Unlock()
		return t, true
	}
	now := s.now()
	if s.big.t != nil && now.Sub(s.big.lastUsed) > bigTableIdle {
		s.big = bigTable{}
	}
	if s.big.t != nil && s.big.key == hdr.key {
		s.big.lastUsed = now
		s.stats.CacheHits++
		t := s.big.t
		s.mu.Unlock()
		return t, false
	}
	if h, ok := s.held[hdr.key]; ok {
		s.stats.CacheHits++
		s.mu.Unlock()
		return h.t, false
	}
	s.stats.CacheMisses++
	if c, ok := s.loading[hdr.key]; ok {
		s.mu.Unlock()
		<-c.done
		return c.t, c.cached
	}
	c := &loadCall{done: make(chan struct{})}
	s.loading[hdr.key] = c
	s.mu.Unlock()

	t = s.loadTable(hdr, pid, m)

	s.mu.Lock()
	delete(s.loading, hdr.key)
	if t != nil {
		if cached = s.tables.put(hdr.key, t); !cached {
			s.stats.TablesOversized++
			if t.err == nil {
				s.big = bigTable{key: hdr.key, t: t, lastUsed: s.now()}
			}
			s.log.Debug("symbol table larger than MaxCacheBytes: not cached", "pid", pid, "file", m.path,
				"bytes", t.sizeBytes(), "maxCacheBytes", s.cfg.MaxCacheBytes)
		}
		if t.err != nil {
			s.refused(pid, m.path, t.err)
		} else {
			s.log.Debug("symbols loaded", "pid", pid, "file", m.path, "buildID", hdr.buildID, "from", t.sources,
				"goInline", t.inl != nil)
		}
	}
	s.mu.Unlock()
	c.t, c.cached = t, cached
	close(c.done)
	return t, cached
}

// loadTable reads the symbols of the file hdr describes. The first source is pid's own
// mapping; if that process has gone, other processes mapping a file with the same key
// are tried.
func (s *Symbolizer) loadTable(hdr *objHeader, pid int32, m procMapping) *symTable {
	if t := s.readTable(hdr, pid, m); t != nil {
		return t
	}
	type source struct {
		pid int32
		m   procMapping
	}
	var others []source
	s.mu.Lock()
	s.procs.each(func(opid int32, p *process) bool {
		if opid == pid || p.exited {
			return true
		}
		for _, om := range p.mappings {
			if om.hdr != nil && om.hdr.key == hdr.key {
				others = append(others, source{opid, om.procMapping})
				break
			}
		}
		return len(others) < 8
	})
	s.mu.Unlock()
	for _, o := range others {
		if t := s.readTable(hdr, o.pid, o.m); t != nil {
			return t
		}
	}
	return nil
}

// readTable reads the symbols of m's file in pid if it still is the file hdr describes;
// nil when it cannot be opened or has changed.
func (s *Symbolizer) readTable(hdr *objHeader, pid int32, m procMapping) *symTable {
	f, err := s.openMapped(pid, m)
	if err != nil {
		return nil
	}
	defer f.Close()
	id, err := statID(f)
	if err != nil {
		return nil
	}
	o, h, err := openObject(f, id.size, id, s.cfg.MaxFileBytes)
	if err != nil || h.key != hdr.key {
		return nil
	}
	t := o.table()
	if o.needsDebugFile(t) {
		if dt := s.debugTable(o, hdr, pid, m); dt != nil {
			return dt
		}
	}
	return t
}
