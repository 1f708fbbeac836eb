package unwind

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"testing"
)

// testSection is a section of a crafted ELF file.
type testSection struct {
	name string
	addr uint64
	data []byte
}

// makeELF writes a minimal little-endian ELF64 file (no program headers) of
// the given machine with the given sections.
func makeELF(machine elf.Machine, sections ...testSection) []byte {
	var shstr bytes.Buffer
	shstr.WriteByte(0)
	names := make([]uint32, len(sections))
	for i, s := range sections {
		names[i] = uint32(shstr.Len())
		shstr.WriteString(s.name)
		shstr.WriteByte(0)
	}
	shstrName := uint32(shstr.Len())
	shstr.WriteString(".shstrtab\x00")

	var body bytes.Buffer
	body.Write(make([]byte, 64)) // the header, written last
	offs := make([]uint64, len(sections))
	for i, s := range sections {
		offs[i] = uint64(body.Len())
		body.Write(s.data)
	}
	shstrOff := uint64(body.Len())
	body.Write(shstr.Bytes())
	for body.Len()%8 != 0 {
		body.WriteByte(0)
	}
	shoff := uint64(body.Len())
	le := binary.LittleEndian
	shdr := func(name uint32, typ elf.SectionType, flags elf.SectionFlag, addr, off, size uint64) {
		var h [64]byte
		le.PutUint32(h[0:], name)
		le.PutUint32(h[4:], uint32(typ))
		le.PutUint64(h[8:], uint64(flags))
		le.PutUint64(h[16:], addr)
		le.PutUint64(h[24:], off)
		le.PutUint64(h[32:], size)
		le.PutUint64(h[48:], 1)
		body.Write(h[:])
	}
	shdr(0, elf.SHT_NULL, 0, 0, 0, 0)
	for i, s := range sections {
		shdr(names[i], elf.SHT_PROGBITS, elf.SHF_ALLOC, s.addr, offs[i], uint64(len(s.data)))
	}
	shdr(shstrName, elf.SHT_STRTAB, 0, 0, shstrOff, uint64(shstr.Len()))

	b := body.Bytes()
	copy(b, []byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)})
	le.PutUint16(b[16:], uint16(elf.ET_DYN))
	le.PutUint16(b[18:], uint16(machine))
	le.PutUint32(b[20:], uint32(elf.EV_CURRENT))
	le.PutUint64(b[40:], shoff)
	le.PutUint16(b[52:], 64) // e_ehsize
	le.PutUint16(b[58:], 64) // e_shentsize
	le.PutUint16(b[60:], uint16(len(sections)+2))
	le.PutUint16(b[62:], uint16(len(sections)+1))
	return b
}

// sectionOf reads a section of an ELF file on disk.
func sectionOf(t testing.TB, path, name string) testSection {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := f.Section(name)
	if s == nil {
		t.Fatalf("%s has no %s", path, name)
	}
	data, err := s.Data()
	if err != nil {
		t.Fatal(err)
	}
	return testSection{name: name, addr: s.Addr, data: data}
}

// fromBytes builds the table of an in-memory ELF file.
func fromBytes(b []byte, opts ...Option) (*Table, error) {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return FromELF(f, opts...)
}

// checkTable fails when t breaks the table's invariants.
func checkTable(tb testing.TB, t *Table) {
	tb.Helper()
	for i, r := range t.Rows {
		if r.CFA > CFAEnd {
			tb.Fatalf("row %d: rule %d", i, r.CFA)
		}
		if i > 0 && r.PC <= t.Rows[i-1].PC {
			tb.Fatalf("row %d at 0x%x after 0x%x: not sorted", i, r.PC, t.Rows[i-1].PC)
		}
		if i > 0 && sameRule(r, t.Rows[i-1]) {
			tb.Fatalf("row %d at 0x%x has the rule of the row before: %+v", i, r.PC, r)
		}
		if (r.CFA == CFANone || r.CFA == CFAEnd) && (r.CFAOffset != 0 || r.RBPOffset != 0) {
			tb.Fatalf("row %d at 0x%x: offsets on a %d row", i, r.PC, r.CFA)
		}
	}
	if n := len(t.Rows); n > 0 && t.End <= t.Rows[n-1].PC {
		tb.Fatalf("End 0x%x not past the last row 0x%x", t.End, t.Rows[n-1].PC)
	}
	if t.Stats.Rows != len(t.Rows) {
		tb.Fatalf("Stats.Rows %d, %d rows", t.Stats.Rows, len(t.Rows))
	}
	sum := 0
	for _, n := range t.Stats.RowsByType {
		sum += n
	}
	if sum != len(t.Rows) {
		tb.Fatalf("Stats.RowsByType sums to %d, %d rows", sum, len(t.Rows))
	}
}
