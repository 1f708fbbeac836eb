package symbolize

import (
	"bytes"
	"cmp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unsafe"
)

// A perf map is the text file a JIT compiler writes for profilers, one line per
// piece of code it generated: "START SIZE name", START and SIZE in hex without 0x
// (perf's tools/perf/Documentation/jit-interface.txt). Node writes it with
// --perf-basic-prof, .NET with DOTNET_PerfMapEnabled=1, the JVM through
// perf-map-agent. The runtime only appends to it, so it is read incrementally.

// maxPerfMapLine bounds a line of a perf map; a longer one is skipped. Real names are
// a function and its script's path: under a kilobyte.
const maxPerfMapLine = 4096

// maxPerfMapScan bounds the entries looked at for one lookup among overlapping
// ones: real maps overlap only where code was replaced at the same address, and
// those are merged to the newest when read.
const maxPerfMapScan = 64

// perfSym is one line of a perf map: code at [start, end) named name (a substring
// of the chunk of the file it was read from). seq is the line's order in the file:
// where code overlaps, the later line is the code there now.
type perfSym struct {
	start, end uint64
	seq        uint32
	name       string
}

// perfTable is the symbols of a perf map read so far, sorted by start, at most one
// per start (the latest), with maxEnd[i] the largest end among syms[:i+1] for
// lookups among overlapping code.
type perfTable struct {
	syms   []perfSym
	maxEnd []uint64
	seq    uint32
	// chunkBytes is the bytes of the file kept for the names.
	chunkBytes int64
}

// perfParse is what parsing a piece of a perf map gave.
type perfParse struct {
	syms []perfSym
	// consumed is the bytes up to and including the last complete line: the
	// rest is a line the runtime is still writing, read again next time.
	consumed int
	// skipped counts malformed, empty-named, zero-sized and overlong lines.
	skipped int
	// full is set when maxSyms was reached: the lines after it were not read.
	full bool
}

// parsePerfMap parses the complete lines of data, numbering them from seq on, and
// stops after maxSyms symbols. Names keep their text (past "START SIZE "), without
// trailing white space. It never panics and allocates one string for all names.
func parsePerfMap(data []byte, seq uint32, maxSyms int) perfParse {
	var r perfParse
	end := bytes.LastIndexByte(data, '\n') + 1
	if end == 0 {
		return r
	}
	text := string(data[:end]) // one allocation: the names are substrings of it
	for pos := 0; pos < end; {
		nl := pos + bytes.IndexByte(data[pos:end], '\n')
		line := text[pos:nl]
		next := nl + 1
		if len(r.syms) >= maxSyms {
			r.full = true
			break
		}
		pos = next
		r.consumed = next
		if len(line) > maxPerfMapLine {
			r.skipped++
			continue
		}
		s, ok := parsePerfMapLine(line)
		if !ok {
			if strings.TrimSpace(line) != "" {
				r.skipped++
			}
			continue
		}
		s.seq = seq
		seq++
		r.syms = append(r.syms, s)
	}
	return r
}

// parsePerfMapLine parses "START SIZE name"; ok is false for a malformed line, a size
// of 0, a range past 2^64, or an empty name.
func parsePerfMapLine(line string) (perfSym, bool) {
	hex := func(s string) (uint64, bool) {
		if len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
			s = s[2:]
		}
		v, err := strconv.ParseUint(s, 16, 64)
		return v, err == nil
	}
	startS, rest, ok := cutSpace(line)
	if !ok {
		return perfSym{}, false
	}
	sizeS, name, ok := cutSpace(rest)
	if !ok {
		return perfSym{}, false
	}
	start, ok1 := hex(startS)
	size, ok2 := hex(sizeS)
	for len(name) > 0 && (name[len(name)-1] == ' ' || name[len(name)-1] == '\t' || name[len(name)-1] == '\r') {
		name = name[:len(name)-1]
	}
	if !ok1 || !ok2 || size == 0 || start+size < start || name == "" {
		return perfSym{}, false
	}
	return perfSym{start: start, end: start + size, name: name}, true
}

// cutSpace splits s at its first space (after leading spaces).
func cutSpace(s string) (before, after string, ok bool) {
	for len(s) > 0 && s[0] == ' ' {
		s = s[1:]
	}
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' || s[i] == '\t' {
			return s[:i], s[i+1:], i > 0
		}
	}
	return s, "", false
}

// add merges newly read symbols (in file order) into t.
func (t *perfTable) add(p perfParse, chunk int) {
	if len(p.syms) == 0 {
		return
	}
	t.chunkBytes += int64(chunk)
	if last := p.syms[len(p.syms)-1].seq; last >= t.seq {
		t.seq = last + 1
	}
	t.syms = append(t.syms, p.syms...)
	// Sorted by start, the latest line first among equal starts, then only that one
	// kept: code replaced at the same address is the new code.
	slices.SortFunc(t.syms, func(a, b perfSym) int { return cmp.Or(cmp.Compare(a.start, b.start), cmp.Compare(b.seq, a.seq)) })
	t.syms = slices.CompactFunc(t.syms, func(a, b perfSym) bool { return a.start == b.start })
	t.syms = slices.Clip(t.syms)
	t.maxEnd = slices.Grow(t.maxEnd[:0], len(t.syms))[:len(t.syms)]
	var m uint64
	for i, s := range t.syms {
		m = max(m, s.end)
		t.maxEnd[i] = m
	}
}

// lookup returns the name of the code at pc: of the lines whose range holds pc, the
// latest.
func (t *perfTable) lookup(pc uint64) (string, bool) {
	i := sort.Search(len(t.syms), func(i int) bool { return t.syms[i].start > pc }) - 1
	best := -1
	for j, n := i, 0; j >= 0 && t.maxEnd[j] > pc && n < maxPerfMapScan; j, n = j-1, n+1 {
		if s := t.syms[j]; pc < s.end && (best < 0 || s.seq > t.syms[best].seq) {
			best = j
		}
	}
	if best < 0 {
		return "", false
	}
	return t.syms[best].name, true
}

func (t *perfTable) len() int { return len(t.syms) }

// sizeBytes estimates the heap t holds.
func (t *perfTable) sizeBytes() int64 {
	return t.chunkBytes + int64(cap(t.syms))*int64(unsafe.Sizeof(perfSym{})) + int64(cap(t.maxEnd))*8
}
