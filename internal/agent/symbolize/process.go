package symbolize

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/kprof/kprof/internal/agent/profile"
)

// process is what is known of one pid: its executable mappings as captured, which stay
// usable after it exits. mappings and startTime are immutable once the process is in
// Symbolizer.procs (a refresh builds a new process); exited and lastRefresh are guarded
// by Symbolizer.mu.
type process struct {
	pid       int32
	startTime uint64 // /proc/PID/stat starttime, to tell a reused pid
	mappings  []mapping
	// jit is the process's perf map, shared with the process's refreshed successors.
	jit *perfMap

	exited      bool
	lastRefresh time.Time
}

// mapping is one executable mapping with what its file told.
type mapping struct {
	procMapping
	hdr  *objHeader // nil when the file could not be read, or there is no file
	prof *profile.Mapping
	// jit is set for memory whose code only a perf map names (jitCandidate).
	jit bool
}

// find returns the mapping containing addr, nil when none does.
func (p *process) find(addr uint64) *mapping {
	i := sort.Search(len(p.mappings), func(i int) bool { return p.mappings[i].limit > addr })
	if i < len(p.mappings) && p.mappings[i].start <= addr {
		return &p.mappings[i]
	}
	return nil
}

// process returns the known process pid, or observes it now; nil when it cannot be read.
func (s *Symbolizer) process(pid int32) *process {
	p, _ := s.observe(pid)
	return p
}

// observe returns the known process pid, or captures and adds it.
func (s *Symbolizer) observe(pid int32) (*process, error) {
	s.mu.Lock()
	p, ok := s.procs.get(pid)
	s.mu.Unlock()
	if ok {
		return p, nil
	}
	p, err := s.capture(pid, &perfMap{pid: pid})
	if err != nil {
		return nil, fmt.Errorf("observe pid %d: %w", pid, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.procs.peek(pid); ok { // a concurrent observe won
		return cur, nil
	}
	s.procs.put(pid, p)
	return p, nil
}

// refresh re-reads the maps of p after an address was found outside its mappings, at
// most once per refreshInterval, and returns the updated process (nil when nothing
// changed: too soon, exited, or the pid now belongs to another process). Mappings that
// are gone but do not overlap new ones are kept: samples taken before a dlclose still
// resolve.
func (s *Symbolizer) refresh(p *process) *process {
	s.mu.Lock()
	now := s.now()
	if p.exited || now.Sub(p.lastRefresh) < refreshInterval {
		s.mu.Unlock()
		return nil
	}
	p.lastRefresh = now
	s.mu.Unlock()

	np, err := s.capture(p.pid, p.jit)
	if err != nil || np.startTime != p.startTime {
		s.mu.Lock()
		p.exited = true
		s.mu.Unlock()
		return nil
	}
	for _, old := range p.mappings {
		if !np.overlaps(old.start, old.limit) {
			np.mappings = append(np.mappings, old)
		}
	}
	sort.Slice(np.mappings, func(i, j int) bool { return np.mappings[i].start < np.mappings[j].start })
	s.mu.Lock()
	defer s.mu.Unlock()
	np.lastRefresh = now
	if cur, ok := s.procs.peek(p.pid); ok && cur == p {
		s.procs.put(p.pid, np)
	}
	return np
}

func (p *process) overlaps(start, limit uint64) bool {
	for _, m := range p.mappings {
		if m.start < limit && start < m.limit {
			return true
		}
	}
	return false
}

// capture reads pid's executable mappings and the headers of their files, and makes
// sure their symbol tables are cached; with anonymous executable memory, it reads
// the perf map jit too (a first time), so JIT code is named after the process exits.
func (s *Symbolizer) capture(pid int32, jit *perfMap) (*process, error) {
	start, err := s.startTime(pid)
	if err != nil {
		return nil, err
	}
	pms, err := s.readMaps(pid)
	if err != nil {
		return nil, err
	}
	p := &process{pid: pid, startTime: start, mappings: make([]mapping, 0, len(pms)), jit: jit, lastRefresh: s.now()}
	hasJIT := false
	type fileResult struct {
		hdr *objHeader
		err error
	}
	files := make(map[string]fileResult) // a file mapped several times is opened once
	for _, pm := range pms {
		m := mapping{procMapping: pm}
		if pm.isFile() {
			r, ok := files[pm.path]
			if !ok {
				r.hdr, r.err = s.header(pid, pm)
				files[pm.path] = r
				if r.err == nil {
					// Read the symbols now: by the time this process's samples are
					// symbolized it may have exited and its files be unreachable.
					s.table(r.hdr, pid, pm)
				}
			}
			m.hdr = r.hdr
		}
		m.prof = &profile.Mapping{Start: pm.start, Limit: pm.limit, Offset: pm.offset, File: pm.path}
		if m.hdr != nil {
			m.prof.BuildID = m.hdr.buildID
		}
		if m.hdr == nil && jitCandidate(pm) {
			m.jit, hasJIT = true, true
			if pm.path == "" {
				m.prof.File = profile.AnonMappingFile
			}
		}
		p.mappings = append(p.mappings, m)
	}
	if hasJIT {
		jit.mu.Lock()
		if jit.checked.IsZero() {
			s.readPerfMap(jit)
		}
		jit.mu.Unlock()
	}
	// Kernel threads and zombies have no mappings: they are still known, with none.
	return p, nil
}

// header returns the header of m's file in pid, from the cache by file identity when
// the file was seen before. Errors are recorded as refusals, once per file.
func (s *Symbolizer) header(pid int32, m procMapping) (*objHeader, error) {
	f, err := s.openMapped(pid, m)
	if err != nil {
		s.mu.Lock()
		s.refused(pid, m.path, err)
		s.mu.Unlock()
		return nil, err
	}
	defer f.Close()
	id, err := statID(f)
	if err != nil {
		s.mu.Lock()
		s.refused(pid, m.path, err)
		s.mu.Unlock()
		return nil, err
	}
	s.mu.Lock()
	r, ok := s.headers.get(id)
	s.mu.Unlock()
	if ok {
		return r.hdr, r.err
	}
	_, r.hdr, r.err = openObject(f, id.size, id, s.cfg.MaxFileBytes)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.headers.put(id, r)
	if r.err != nil {
		s.refused(pid, m.path, r.err)
	}
	return r.hdr, r.err
}

// openMapped opens the file of m as pid sees it: through /proc/PID/root (so a
// container's file is found), or /proc/PID/map_files when the path is gone, deleted
// or replaced by another file since it was mapped.
func (s *Symbolizer) openMapped(pid int32, m procMapping) (*os.File, error) {
	return openMapped(s.cfg.ProcRoot, pid, m)
}

// openMapped opens the file of m as pid sees it under the procfs at procRoot.
func openMapped(procRoot string, pid int32, m procMapping) (*os.File, error) {
	dir := filepath.Join(procRoot, strconv.Itoa(int(pid)))
	mapFile := func() (*os.File, error) {
		return openRegular(filepath.Join(dir, "map_files", fmt.Sprintf("%x-%x", m.start, m.limit)))
	}
	if m.deleted {
		return mapFile()
	}
	f, err := openInRoot(filepath.Join(dir, "root"), m.path)
	if err != nil {
		if mf, merr := mapFile(); merr == nil {
			return mf, nil
		}
		return nil, err
	}
	if id, serr := statID(f); serr == nil && id.ino != m.inode {
		// Another file is at the path now, or an overlay file system reports another
		// inode: map_files is the mapped file itself when it can be read.
		if mf, merr := mapFile(); merr == nil {
			f.Close()
			return mf, nil
		}
	}
	return f, nil
}

// readMaps returns pid's executable mappings, sorted by address.
func (s *Symbolizer) readMaps(pid int32) ([]procMapping, error) {
	return readMaps(s.cfg.ProcRoot, pid)
}

func readMaps(procRoot string, pid int32) ([]procMapping, error) {
	path := filepath.Join(procRoot, strconv.Itoa(int(pid)), "maps")
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pms, err := parseMaps(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	sort.Slice(pms, func(i, j int) bool { return pms[i].start < pms[j].start })
	return pms, nil
}

// startTime returns field 22 of /proc/PID/stat, the process's start in clock ticks
// since boot: with the pid it identifies a process (pids are reused).
func (s *Symbolizer) startTime(pid int32) (uint64, error) {
	return startTime(s.cfg.ProcRoot, pid)
}

func startTime(procRoot string, pid int32) (uint64, error) {
	path := filepath.Join(procRoot, strconv.Itoa(int(pid)), "stat")
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	// comm (field 2) is in parentheses and may contain anything, so count from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("%s: no ')' after comm", path)
	}
	fields := bytes.Fields(b[i+1:])
	const startField = 22 - 3 // fields after comm start at field 3 (state)
	if len(fields) <= startField {
		return 0, fmt.Errorf("%s: %d fields after comm, want more than %d", path, len(fields), startField)
	}
	v, err := strconv.ParseUint(string(fields[startField]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: starttime: %w", path, err)
	}
	return v, nil
}
