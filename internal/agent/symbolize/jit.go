package symbolize

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// perfMapChunk is the most read of a perf map at once: the names of a chunk are kept
// as one string, so a big map is not held twice while it is parsed.
const perfMapChunk = 1 << 20

// perfMap is a process's perf map as read so far. A process and its refreshed
// successors share it; it goes with them when the process is forgotten or evicted.
// Guarded by mu; fields are not touched under Symbolizer.mu.
type perfMap struct {
	mu    sync.Mutex
	pid   int32
	nspid int32 // pid inside the process's pid namespace; 0 until read
	// checked is when the file was last looked at, zero before: it is looked at again
	// only when a lookup misses and refreshInterval has passed.
	checked time.Time
	// id is the file as last read; off the bytes of it parsed (complete lines).
	id   fileID
	off  int64
	seen bool // a file was found at least once
	full bool // MaxPerfMapBytes or MaxPerfMapEntries reached: nothing more is read
	tab  perfTable
}

// jitCandidate tells whether code in m can only be named by a perf map: anonymous
// executable memory, named anonymous memory ("[anon:...]", Linux 5.17+), and the
// memfd .NET maps its code through ("/memfd:doublemapper (deleted)").
func jitCandidate(m procMapping) bool {
	return m.path == "" || strings.HasPrefix(m.path, "[anon:") || strings.HasPrefix(m.path, "/memfd:")
}

// jitName names pc in mapping m of p from p's perf map. A mapping whose file gave no
// name is looked up too once the process is known to have a perf map: a runtime
// also writes there the code it keeps in its executable (V8's builtins).
func (s *Symbolizer) jitName(p *process, m *mapping, pc uint64) (string, bool) {
	pm := p.jit
	if pm == nil {
		return "", false
	}
	pm.mu.Lock()
	defer pm.mu.Unlock()
	if !m.jit && !pm.seen {
		return "", false
	}
	name, ok := pm.tab.lookup(pc)
	if !ok && s.readPerfMap(pm) {
		name, ok = pm.tab.lookup(pc)
	}
	if ok {
		s.mu.Lock()
		s.stats.JITFrames++
		s.mu.Unlock()
	}
	return name, ok
}

// readPerfMap reads what was appended to pm's file since it was last read, at most
// once per refreshInterval, and reports whether symbols were added. A new file at
// the path (the runtime restarted its map) is read from its start. Once the process
// is gone the symbols read stay. pm.mu is held.
func (s *Symbolizer) readPerfMap(pm *perfMap) bool {
	now := s.now()
	if !pm.checked.IsZero() && now.Sub(pm.checked) < refreshInterval {
		return false
	}
	pm.checked = now
	if pm.full {
		return false
	}
	f, path, err := s.openPerfMap(pm)
	if err != nil {
		return false // none (most processes), or the process has gone
	}
	defer f.Close()
	id, err := statID(f)
	if err != nil {
		s.log.Debug("perf map not read", "pid", pm.pid, "file", path, "reason", err.Error())
		return false
	}
	if pm.seen && (id.dev != pm.id.dev || id.ino != pm.id.ino || id.size < pm.off) {
		pm.tab, pm.off = perfTable{}, 0
	}
	if pm.seen && id == pm.id {
		return false
	}
	pm.seen, pm.id = true, id
	limit := min(id.size, s.cfg.MaxPerfMapBytes)
	var syms, skipped int
	full := false
	buf := make([]byte, min(perfMapChunk, max(limit-pm.off, 0)))
	for pm.off < limit && !full {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), limit-pm.off)], pm.off)
		if n == 0 {
			if err != nil && !errors.Is(err, io.EOF) {
				s.log.Debug("perf map read failed", "pid", pm.pid, "file", path, "reason", err.Error())
			}
			break
		}
		r := parsePerfMap(buf[:n], pm.tab.seq, s.cfg.MaxPerfMapEntries-pm.tab.len())
		if r.consumed == 0 {
			if n < len(buf) {
				break // a line still being written
			}
			r.consumed, r.skipped = n, 1 // a chunk without a line end: skipped
		}
		pm.tab.add(r, r.consumed)
		pm.off += int64(r.consumed)
		syms, skipped, full = syms+len(r.syms), skipped+r.skipped, r.full
	}
	truncated := full || id.size > s.cfg.MaxPerfMapBytes
	pm.full = truncated
	s.mu.Lock()
	s.stats.PerfMapsRead++
	s.stats.PerfMapSymbols += uint64(syms)
	s.stats.PerfMapLinesSkipped += uint64(skipped)
	if truncated {
		s.stats.PerfMapsTruncated++
	}
	s.mu.Unlock()
	if truncated {
		s.log.Info("perf map read up to its bound: later JIT code stays unnamed", "pid", pm.pid, "file", path,
			"bytes", id.size, "maxBytes", s.cfg.MaxPerfMapBytes, "symbols", pm.tab.len(), "maxSymbols", s.cfg.MaxPerfMapEntries)
	}
	s.log.Debug("perf map read", "pid", pm.pid, "file", path, "newSymbols", syms, "symbols", pm.tab.len(), "skippedLines", skipped)
	return syms > 0
}

// openPerfMap opens pm's perf map as its process sees it: /tmp/perf-N.map inside
// its root, N its pid in its own pid namespace (a container's runtime names the
// file by the pid it knows). Symlinks are resolved inside that root.
func (s *Symbolizer) openPerfMap(pm *perfMap) (*os.File, string, error) {
	dir := filepath.Join(s.cfg.ProcRoot, strconv.Itoa(int(pm.pid)))
	if pm.nspid == 0 {
		nspid, err := nsPid(filepath.Join(dir, "status"))
		if err != nil {
			return nil, "", err
		}
		pm.nspid = nspid
	}
	path := fmt.Sprintf("/tmp/perf-%d.map", pm.nspid)
	f, err := openInRoot(filepath.Join(dir, "root"), path)
	return f, path, err
}

// nsPid returns the innermost pid of a /proc/PID/status's NSpid line: the process's
// pid in its own pid namespace. Without the line (Linux < 4.1) it is the Pid line's.
func nsPid(statusPath string) (int32, error) {
	f, err := os.Open(statusPath)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, 64<<10))
	var pid int32
	for sc.Scan() {
		key, val, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok || (string(key) != "NSpid" && string(key) != "Pid") {
			continue
		}
		fields := bytes.Fields(val)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseInt(string(fields[len(fields)-1]), 10, 32)
		if err != nil || v <= 0 {
			return 0, fmt.Errorf("%s: %s %q", statusPath, key, val)
		}
		if string(key) == "NSpid" {
			return int32(v), nil
		}
		pid = int32(v)
	}
	if pid == 0 {
		return 0, fmt.Errorf("%s: no NSpid or Pid line", statusPath)
	}
	return pid, nil
}
