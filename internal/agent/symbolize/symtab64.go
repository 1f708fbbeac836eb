package symbolize

import (
	"bytes"
	"debug/elf"
	"unsafe"
)

// symtab64 is a 64-bit ELF .symtab read in place, without building an elf.Symbol and
// a name string for each of its entries as elf.File.Symbols does: a Go binary's
// .symtab names every Go function again (a kube-apiserver's: 160 000 entries, 15 MiB
// of names), and only a handful of those symbols are used, the pclntab naming the Go
// functions. Its symbols are elf.File.Symbols' (a test compares them).
type symtab64 struct {
	o          *elfObject
	data, strs []byte // the entries after the null one; the string table
	release    func()
}

const sym64Size = 24 // sizeof(Elf64_Sym)

// symtab64Of reads the .symtab s in place when it is a 64-bit one that elf.File.Symbols
// would read without an error; ok is false otherwise (the caller uses Symbols). s and
// its string table have been checked (checkSymbolSection). Call release when done.
func (o *elfObject) symtab64Of(s *elf.Section) (*symtab64, bool) {
	if o.f.Class != elf.ELFCLASS64 || s.Size == 0 || s.Size%sym64Size != 0 {
		return nil, false
	}
	str := o.f.Sections[s.Link]
	var maps [][]byte
	read := func(sec *elf.Section) ([]byte, bool) {
		if o.file != nil && sec.Size >= mapMinBytes {
			if data, whole, err := mapRange(o.file, int64(sec.Offset), int64(sec.Size)); err == nil {
				maps = append(maps, whole)
				return data, true
			}
		}
		b := make([]byte, sec.Size)
		_, err := sec.ReadAt(b, 0)
		return b, err == nil
	}
	t := &symtab64{o: o, release: func() {
		for _, m := range maps {
			unmap(m)
		}
	}}
	var ok1, ok2 bool
	t.data, ok1 = read(s)
	t.strs, ok2 = read(str)
	if !ok1 || !ok2 {
		t.release()
		return nil, false
	}
	t.data = t.data[sym64Size:]
	return t, true
}

func (t *symtab64) len() int { return len(t.data) / sym64Size }

// name is the name of entry i as elf.File.Symbols reads it ("" when out of range or
// not terminated), without a copy: valid while t is.
func (t *symtab64) name(i int) string {
	off := int(t.o.f.ByteOrder.Uint32(t.data[i*sym64Size:]))
	if off < 0 || off >= len(t.strs) {
		return ""
	}
	end := bytes.IndexByte(t.strs[off:], 0)
	if end <= 0 {
		return ""
	}
	return unsafe.String(&t.strs[off], end)
}

// symbol is entry i with a name of its own (copied), or with the name in place.
func (t *symtab64) symbol(i int, copyName bool) elf.Symbol {
	e := t.data[i*sym64Size : (i+1)*sym64Size]
	order := t.o.f.ByteOrder
	name := t.name(i)
	if copyName {
		name = string([]byte(name))
	}
	return elf.Symbol{
		Name:    name,
		Info:    e[4],
		Other:   e[5],
		Section: elf.SectionIndex(order.Uint16(e[6:8])),
		Value:   order.Uint64(e[8:16]),
		Size:    order.Uint64(e[16:24]),
	}
}

// goSymbolNames are the symbols goSymbols looks up by name.
var goSymbolNames = []string{"runtime.text", "runtime.pclntab", "runtime.epclntab", "go:func.*", "go.func.*"}

// named returns, in table order, the entries whose names goSymbols looks up.
func (t *symtab64) named() []elf.Symbol {
	var out []elf.Symbol
	for i := range t.len() {
		n := t.name(i)
		if len(n) < len("go:func.*") || (n[0] != 'r' && n[0] != 'g') {
			continue
		}
		for _, w := range goSymbolNames {
			if n == w {
				out = append(out, t.symbol(i, true))
				break
			}
		}
	}
	return out
}

// outside returns what funcSymbols(…, goLo, goHi) needs of the table, in table order:
// the function symbols (funcCandidate) outside the Go text [goLo, goHi), and of those
// inside it the first with the lowest address (the only one funcSymbols keeps).
func (t *symtab64) outside(goLo, goHi uint64) []elf.Symbol {
	out := make([]elf.Symbol, 0, 64)
	first, firstAt := -1, uint64(0)
	order := t.o.f.ByteOrder
	for i := range t.len() {
		v := order.Uint64(t.data[i*sym64Size+8:])
		inGo := v >= goLo && v < goHi
		if inGo && first >= 0 && v >= firstAt {
			continue
		}
		s := t.symbol(i, false)
		if _, ok := t.o.funcCandidate(s); !ok {
			continue
		}
		if inGo {
			first, firstAt = i, v
			continue
		}
		s.Name = string([]byte(s.Name))
		out = append(out, s)
	}
	if first >= 0 {
		out = append(out, t.symbol(first, true))
	}
	return out
}
