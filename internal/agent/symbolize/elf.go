package symbolize

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
)

// ErrFileTooLarge is returned (wrapped) for a file larger than Config.MaxFileBytes.
var ErrFileTooLarge = errors.New("file exceeds MaxFileBytes")

// errMalformed is returned (wrapped) for a file that is not a well-formed ELF file.
var errMalformed = errors.New("malformed ELF")

// maxNoteBytes bounds a note section read for build IDs; real ones are under 100 bytes.
const maxNoteBytes = 64 << 10

// fileID identifies a file by what stat says, before its build ID is known.
type fileID struct {
	dev, ino uint64
	mtime    int64 // ns
	size     int64
}

func (id fileID) key() string {
	return fmt.Sprintf("file:%x:%d:%d:%d", id.dev, id.ino, id.mtime, id.size)
}

// loadSeg is a PT_LOAD program header: file bytes [off, off+filesz) are mapped at
// link-time virtual address vaddr.
type loadSeg struct{ off, filesz, vaddr uint64 }

// objHeader is what is needed to place an address in a file and to name the file: kept
// for every mapped file of every process, so it is small.
type objHeader struct {
	// key identifies the file's contents: "gnu:<hex>", "go:<id>", or "file:..." when the
	// file carries no build ID.
	key string
	// buildID is the hex GNU build ID, else the Go build ID, else "".
	buildID string
	loads   []loadSeg
}

// vaddr maps a file offset to the link-time virtual address of the byte there, as the
// symbol tables see it. It is what makes PIE (loaded anywhere) and non-PIE (loaded at
// its link address) the same case: the mapping gives the file offset, the program
// headers the address.
func (h *objHeader) vaddr(fileOff uint64) (uint64, bool) {
	for _, l := range h.loads {
		if fileOff >= l.off && fileOff-l.off < l.filesz {
			return fileOff - l.off + l.vaddr, true
		}
	}
	return 0, false
}

// openObject parses the header of the ELF file r of size bytes. It never panics:
// malformed input is an error wrapping errMalformed, a file over maxBytes one wrapping
// ErrFileTooLarge. The returned object reads from r, so r must stay open while it is used.
func openObject(r io.ReaderAt, size int64, id fileID, maxBytes int64) (o *elfObject, h *objHeader, err error) {
	if o, err = parseELF(r, size, maxBytes); err != nil {
		return nil, nil, err
	}
	defer func() {
		if p := recover(); p != nil {
			o, h, err = nil, nil, fmt.Errorf("%w: panic while parsing: %v", errMalformed, p)
		}
	}()
	if h, err = o.header(id); err != nil {
		return nil, nil, err
	}
	return o, h, nil
}

// parseELF parses the ELF headers of r of size bytes, as openObject, without
// requiring a loadable file (a separate debug file has no loadable contents).
func parseELF(r io.ReaderAt, size, maxBytes int64) (o *elfObject, err error) {
	if size > maxBytes {
		return nil, fmt.Errorf("%d bytes: %w (%d)", size, ErrFileTooLarge, maxBytes)
	}
	defer func() {
		// debug/elf is meant to reject bad input with errors, but this reads files from
		// every container on the node: a panic would take the agent down.
		if p := recover(); p != nil {
			o, err = nil, fmt.Errorf("%w: panic while parsing: %v", errMalformed, p)
		}
	}()
	ef, err := elf.NewFile(io.NewSectionReader(r, 0, size))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errMalformed, err)
	}
	o = &elfObject{f: ef, size: size}
	if f, ok := r.(*os.File); ok {
		o.file = f
	}
	return o, nil
}

// table reads the object's symbols; it never panics and never returns nil: problems
// end in the table's err. The file's mapped bytes (mapSection) belong to the table
// from then on, and are unmapped once it is garbage.
func (o *elfObject) table() (t *symTable) {
	// A mapped file truncated under us faults (SIGBUS) instead of returning an error.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			for _, m := range o.maps {
				unmap(m)
			}
			o.maps = nil
			t = &symTable{err: fmt.Errorf("%w: panic while reading symbols: %v", errMalformed, p)}
		}
	}()
	t = o.symbols()
	maps := o.maps
	o.maps = nil
	if len(maps) == 0 {
		return t
	}
	for _, m := range maps {
		dropPages(m) // what reading the table touched
	}
	if t.gotab == nil {
		for _, m := range maps {
			unmap(m)
		}
		return t
	}
	t.maps = maps
	runtime.AddCleanup(t, func(maps [][]byte) {
		for _, m := range maps {
			unmap(m)
		}
	}, maps)
	return t
}

// elfObject is an open ELF file whose sections are read within the file's size.
type elfObject struct {
	f    *elf.File
	size int64
	// file is the file when it is one (not bytes in memory): large sections are
	// mapped from it rather than read. maps are the mappings made, for the table.
	file *os.File
	maps [][]byte
}

// sectionRange returns n bytes of s from offset off within it, which the caller has
// checked lie in the file: mapped from the file when it can be, read otherwise.
func (o *elfObject) sectionRange(s *elf.Section, off, n uint64) ([]byte, error) {
	if o.file != nil && n >= mapMinBytes {
		if data, whole, err := mapRange(o.file, int64(s.Offset+off), int64(n)); err == nil {
			o.maps = append(o.maps, whole)
			return data, nil
		}
	}
	b := make([]byte, n)
	if _, err := s.ReadAt(b, int64(off)); err != nil {
		return nil, fmt.Errorf("%w: section %s: %w", errMalformed, s.Name, err)
	}
	return b, nil
}

// mapMinBytes: smaller sections are read onto the heap (a mapping costs a VMA and at
// least a page).
const mapMinBytes = 64 << 10

// heapBytes is what b holds of the heap: 0 when it is mapped from the file.
func (o *elfObject) heapBytes(b []byte) int64 {
	for _, m := range o.maps {
		if within(b, m) {
			return 0
		}
	}
	return int64(cap(b))
}

func (o *elfObject) header(id fileID) (*objHeader, error) {
	h := &objHeader{}
	for _, p := range o.f.Progs {
		if p.Type != elf.PT_LOAD || p.Filesz == 0 {
			continue
		}
		if p.Off > uint64(o.size) || p.Filesz > uint64(o.size)-p.Off {
			return nil, fmt.Errorf("%w: PT_LOAD at offset %d size %d beyond the file's %d bytes", errMalformed, p.Off, p.Filesz, o.size)
		}
		h.loads = append(h.loads, loadSeg{off: p.Off, filesz: p.Filesz, vaddr: p.Vaddr})
	}
	if len(h.loads) == 0 {
		return nil, fmt.Errorf("%w: no PT_LOAD program header (not a loadable file)", errMalformed)
	}
	gnu, goID := o.buildIDs()
	switch {
	case gnu != "":
		h.key, h.buildID = "gnu:"+gnu, gnu
	case goID != "":
		h.key, h.buildID = "go:"+goID, goID
	default:
		h.key = id.key()
	}
	return h, nil
}

// buildIDs returns the hex GNU build ID and the Go build ID, each "" when absent.
func (o *elfObject) buildIDs() (gnu, goID string) {
	visit := func(data []byte, align uint64) {
		walkNotes(data, o.f.ByteOrder, align, func(name string, typ uint32, desc []byte) {
			switch {
			case name == "GNU" && typ == 3 && gnu == "": // NT_GNU_BUILD_ID
				gnu = hex.EncodeToString(desc)
			case name == "Go" && typ == 4 && goID == "": // ELF_NOTE_GOBUILDID_TAG
				goID = string(desc)
			}
		})
	}
	found := false
	for _, s := range o.f.Sections {
		if s.Type != elf.SHT_NOTE {
			continue
		}
		if data, err := o.sectionData(s, maxNoteBytes); err == nil {
			visit(data, s.Addralign)
			found = true
		}
	}
	if found {
		return gnu, goID
	}
	// Section headers can be stripped; the program headers still point at the notes.
	for _, p := range o.f.Progs {
		if p.Type != elf.PT_NOTE || p.Filesz > maxNoteBytes || p.Off > uint64(o.size) || p.Filesz > uint64(o.size)-p.Off {
			continue
		}
		data := make([]byte, p.Filesz)
		if _, err := p.ReadAt(data, 0); err == nil {
			visit(data, p.Align)
		}
	}
	return gnu, goID
}

// walkNotes calls f for every well-formed note in data; it stops at the first
// malformed one.
func walkNotes(data []byte, order binary.ByteOrder, align uint64, f func(name string, typ uint32, desc []byte)) {
	if align != 8 {
		align = 4
	}
	pad := func(n uint64) uint64 { return (n + align - 1) &^ (align - 1) }
	for uint64(len(data)) >= 12 {
		namesz := uint64(order.Uint32(data[0:]))
		descsz := uint64(order.Uint32(data[4:]))
		typ := order.Uint32(data[8:])
		rest := uint64(len(data)) - 12
		if pad(namesz) > rest || descsz > rest-pad(namesz) {
			return
		}
		name := bytes.TrimRight(data[12:12+namesz], "\x00")
		descOff := 12 + pad(namesz)
		f(string(name), typ, data[descOff:descOff+descsz])
		next := descOff + pad(descsz)
		if next >= uint64(len(data)) {
			return
		}
		data = data[next:]
	}
}

// sectionData reads s after checking that it lies within the file and is at most max
// bytes; compressed sections are refused (their inflated size is not bounded by the file).
func (o *elfObject) sectionData(s *elf.Section, max uint64) ([]byte, error) {
	if err := o.checkSection(s, max); err != nil {
		return nil, err
	}
	data, err := s.Data()
	if err != nil {
		return nil, fmt.Errorf("%w: section %s: %w", errMalformed, s.Name, err)
	}
	return data, nil
}

func (o *elfObject) checkSection(s *elf.Section, max uint64) error {
	switch {
	case s.Type == elf.SHT_NOBITS:
		return fmt.Errorf("%w: section %s has no file contents", errMalformed, s.Name)
	case s.Flags&elf.SHF_COMPRESSED != 0:
		return fmt.Errorf("section %s is compressed: not read", s.Name)
	case s.Offset > uint64(o.size) || s.Size > uint64(o.size)-s.Offset:
		return fmt.Errorf("%w: section %s at offset %d size %d beyond the file's %d bytes", errMalformed, s.Name, s.Offset, s.Size, o.size)
	case s.Size > max:
		return fmt.Errorf("%w: section %s is %d bytes, more than the %d allowed", errMalformed, s.Name, s.Size, max)
	}
	return nil
}

// checkSymbolSection checks a symbol table section and the string table it links to.
func (o *elfObject) checkSymbolSection(s *elf.Section) error {
	if err := o.checkSection(s, uint64(o.size)); err != nil {
		return err
	}
	if int(s.Link) <= 0 || int(s.Link) >= len(o.f.Sections) {
		return fmt.Errorf("%w: section %s links to string table %d of %d", errMalformed, s.Name, s.Link, len(o.f.Sections))
	}
	return o.checkSection(o.f.Sections[s.Link], uint64(o.size))
}
