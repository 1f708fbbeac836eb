package symbolize

import (
	"debug/elf"
	"fmt"
	"os"
)

// This file is the part of the symbolizer's process reading that other agent
// components share (the unwind table loader): the executable mappings of a process,
// and their files opened as the process sees them, identified by contents.

// ExecMapping is one executable mapping of /proc/PID/maps.
type ExecMapping struct {
	// Start and Limit are the process addresses [Start, Limit); Offset is the file
	// offset mapped at Start.
	Start, Limit, Offset uint64
	Inode                uint64
	// Path as the process sees it, without " (deleted)"; "" for anonymous memory,
	// "[vdso]" and the like for the kernel's.
	Path    string
	Deleted bool
}

// IsFile tells whether the mapping is backed by a file that can be opened.
func (m ExecMapping) IsFile() bool { return m.proc().isFile() }

func (m ExecMapping) proc() procMapping {
	return procMapping{start: m.Start, limit: m.Limit, offset: m.Offset, inode: m.Inode, path: m.Path, deleted: m.Deleted}
}

// ReadExecMappings returns the executable mappings of pid from the procfs at
// procRoot, sorted by address; the read is bounded.
func ReadExecMappings(procRoot string, pid int32) ([]ExecMapping, error) {
	pms, err := readMaps(procRoot, pid)
	if err != nil {
		return nil, err
	}
	out := make([]ExecMapping, len(pms))
	for i, pm := range pms {
		out[i] = ExecMapping{Start: pm.start, Limit: pm.limit, Offset: pm.offset, Inode: pm.inode, Path: pm.path, Deleted: pm.deleted}
	}
	return out, nil
}

// ProcessStartTime returns when pid started, in clock ticks since boot (field 22 of
// /proc/PID/stat): with the pid it identifies a process, as pids are reused.
func ProcessStartTime(procRoot string, pid int32) (uint64, error) {
	return startTime(procRoot, pid)
}

// MappedObject is the ELF file of an executable mapping, opened as its process sees
// it: through /proc/PID/root with symlinks resolved inside that root, or
// /proc/PID/map_files. Close it after use.
type MappedObject struct {
	// ELF reads from the open file; sections are the caller's to bound.
	ELF *elf.File
	// Key identifies the file's contents: "gnu:<hex build ID>", "go:<Go build ID>",
	// or "file:<dev>:<inode>:<mtime>:<size>" when it carries no build ID.
	Key string
	// Size of the file in bytes.
	Size int64

	f   *os.File
	hdr *objHeader
}

// OpenMappedObject opens the file of m in pid under the procfs at procRoot and
// reads its ELF header. Files over maxBytes, special files and malformed ELF are
// errors.
func OpenMappedObject(procRoot string, pid int32, m ExecMapping, maxBytes int64) (*MappedObject, error) {
	f, err := openMapped(procRoot, pid, m.proc())
	if err != nil {
		return nil, err
	}
	id, err := statID(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	o, hdr, err := openObject(f, id.size, id, maxBytes)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", m.Path, err)
	}
	return &MappedObject{ELF: o.f, Key: hdr.key, Size: id.size, f: f, hdr: hdr}, nil
}

// Bias returns what a process address of m minus the bias gives: the file's
// virtual address (as in its program headers). false when no PT_LOAD segment
// holds m's offset.
func (o *MappedObject) Bias(m ExecMapping, pageSize uint64) (uint64, bool) {
	for _, l := range o.hdr.loads {
		// A segment is mapped from its offset rounded down to a page.
		aligned := l.off &^ (pageSize - 1)
		if m.Offset >= aligned && m.Offset < l.off+l.filesz {
			// pc = Start + (fileOff - Offset), vaddr = fileOff - off + vaddr.
			return m.Start - m.Offset + l.off - l.vaddr, true
		}
	}
	return 0, false
}

// Close closes the file.
func (o *MappedObject) Close() error { return o.f.Close() }
