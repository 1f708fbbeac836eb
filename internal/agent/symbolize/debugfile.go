package symbolize

import (
	"bytes"
	"debug/elf"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// A stripped binary (no .symtab: distributions ship their libraries so) keeps its
// full symbol table in a separate debug file (objcopy --only-keep-debug), installed
// by a -dbg/-dbgsym/debuginfo package, found as gdb finds it: by the binary's GNU
// build ID at .build-id/xx/yyyy.debug under the debug directory, else by the name in
// its .gnu_debuglink section, next to the binary, in .debug/ beside it, and under the
// debug directory at the binary's own path. A debug file found by build ID must have
// that build ID; one found by debuglink must have the CRC-32 the section gives (and
// the build ID, when both have one). Its addresses are the binary's link-time
// addresses, so its symbols are used as the binary's own.

// processDebugDir is the debug directory inside a process's root.
const processDebugDir = "/usr/lib/debug"

// maxDebugLinkBytes bounds a .gnu_debuglink section (a file name and a CRC).
const maxDebugLinkBytes = 4096

// debugLink is a parsed .gnu_debuglink section.
type debugLink struct {
	name string
	crc  uint32
}

// needsDebugFile tells whether the symbols t read from o leave out what a debug
// file has: a file without .symtab and without a Go line table.
func (o *elfObject) needsDebugFile(t *symTable) bool {
	return t.gotab == nil && o.f.SectionByType(elf.SHT_SYMTAB) == nil
}

// debugLink returns o's .gnu_debuglink, ok false when it has none or it is malformed
// (a name that is not a plain file name included).
func (o *elfObject) debugLink() (debugLink, bool) {
	s := o.f.Section(".gnu_debuglink")
	if s == nil {
		return debugLink{}, false
	}
	data, err := o.sectionData(s, maxDebugLinkBytes)
	if err != nil {
		return debugLink{}, false
	}
	return parseDebugLink(data, o.f.ByteOrder)
}

func parseDebugLink(data []byte, order interface{ Uint32([]byte) uint32 }) (debugLink, bool) {
	n := bytes.IndexByte(data, 0)
	if n <= 0 {
		return debugLink{}, false
	}
	name := string(data[:n])
	crcOff := (n + 1 + 3) &^ 3
	if crcOff+4 > len(data) || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return debugLink{}, false
	}
	return debugLink{name: name, crc: order.Uint32(data[crcOff:])}, true
}

// debugCandidate is a place a debug file may be: path under root, opened with
// openInRoot; buildID or link say what it must match.
type debugCandidate struct {
	root, path string
	buildID    string
	link       *debugLink
}

// debugCandidates lists where the debug file of the file mapped by m in pid may be, in
// the order they are tried: the process's root first, then the agent's DebugDir.
func (s *Symbolizer) debugCandidates(pid int32, m procMapping, buildID string, link *debugLink) []debugCandidate {
	procRoot := filepath.Join(s.cfg.ProcRoot, strconv.Itoa(int(pid)), "root")
	var out []debugCandidate
	if len(buildID) > 2 {
		rel := "/.build-id/" + buildID[:2] + "/" + buildID[2:] + ".debug"
		out = append(out,
			debugCandidate{root: procRoot, path: processDebugDir + rel, buildID: buildID},
			debugCandidate{root: s.cfg.DebugDir, path: rel, buildID: buildID})
	}
	if link != nil && strings.HasPrefix(m.path, "/") {
		dir := path.Dir(m.path)
		out = append(out,
			debugCandidate{root: procRoot, path: path.Join(dir, link.name), buildID: buildID, link: link},
			debugCandidate{root: procRoot, path: path.Join(dir, ".debug", link.name), buildID: buildID, link: link},
			debugCandidate{root: procRoot, path: path.Join(processDebugDir, dir, link.name), buildID: buildID, link: link},
			debugCandidate{root: s.cfg.DebugDir, path: path.Join(dir, link.name), buildID: buildID, link: link})
	}
	return out
}

// debugTable returns the symbols of the separate debug file of o, the file hdr
// describes, mapped by m in pid; nil when none is found. Called once per build ID
// (the table is then cached under the binary's key).
func (s *Symbolizer) debugTable(o *elfObject, hdr *objHeader, pid int32, m procMapping) *symTable {
	buildID := ""
	if strings.HasPrefix(hdr.key, "gnu:") {
		buildID = hdr.buildID
	}
	var link *debugLink
	if l, ok := o.debugLink(); ok {
		link = &l
	}
	if buildID == "" && link == nil {
		return nil // nothing to find one by
	}
	var rejected []string
	for _, c := range s.debugCandidates(pid, m, buildID, link) {
		f, err := openInRoot(c.root, c.path)
		if err != nil {
			continue
		}
		t, err := s.readDebugFile(f, c)
		f.Close()
		if err != nil {
			rejected = append(rejected, err.Error())
			s.mu.Lock()
			s.stats.DebugFilesRejected++
			s.mu.Unlock()
			s.log.Debug("debug file refused", "pid", pid, "file", m.path, "debugFile", filepath.Join(c.root, c.path), "reason", err.Error())
			continue
		}
		s.mu.Lock()
		s.stats.DebugFiles++
		s.mu.Unlock()
		return t
	}
	s.mu.Lock()
	s.stats.DebugFilesMissing++
	s.mu.Unlock()
	s.log.Debug("no debug file for a stripped file", "pid", pid, "file", m.path, "buildID", buildID, "debuglink", link != nil,
		"refused", strings.Join(rejected, "; "))
	return nil
}

// readDebugFile reads the symbols of the candidate debug file f after checking that it
// belongs to the binary: its build ID, and for a debuglink the CRC of its bytes.
func (s *Symbolizer) readDebugFile(f *os.File, c debugCandidate) (*symTable, error) {
	id, err := statID(f)
	if err != nil {
		return nil, err
	}
	name := filepath.Join(c.root, c.path)
	if c.link != nil {
		if id.size > s.cfg.MaxFileBytes {
			return nil, fmt.Errorf("%s: %d bytes: %w (%d)", name, id.size, ErrFileTooLarge, s.cfg.MaxFileBytes)
		}
		h := crc32.NewIEEE()
		if _, err := io.Copy(h, io.NewSectionReader(f, 0, id.size)); err != nil {
			return nil, fmt.Errorf("%s: CRC: %w", name, err)
		}
		if got := h.Sum32(); got != c.link.crc {
			return nil, fmt.Errorf("%s: CRC %08x, the .gnu_debuglink wants %08x", name, got, c.link.crc)
		}
	}
	o, err := parseELF(f, id.size, s.cfg.MaxFileBytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	gnu, _ := o.buildIDs()
	switch {
	case c.link == nil && gnu != c.buildID:
		return nil, fmt.Errorf("%s: build ID %q, want %q", name, gnu, c.buildID)
	case c.link != nil && gnu != "" && c.buildID != "" && gnu != c.buildID:
		return nil, fmt.Errorf("%s: build ID %q, want %q", name, gnu, c.buildID)
	}
	if o.f.SectionByType(elf.SHT_SYMTAB) == nil {
		return nil, fmt.Errorf("%s: no .symtab", name)
	}
	t := o.table()
	if t.err != nil {
		return nil, fmt.Errorf("%s: %w", name, t.err)
	}
	if t.sources != "" {
		t.sources = "debug file " + name + " " + t.sources
	}
	return t, nil
}
