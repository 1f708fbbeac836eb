package symbolize

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
)

// Go's inlining tables (Go 1.20 and later, pclntab magic 0xfffffff1), which debug/gosym
// does not read. With them an address in inlined code names the inlined function and
// every function it was inlined into, each with its own line, as the Go runtime's
// CallersFrames does. Without them the line tables would give the inlined callee's
// file:line under the caller's name.
//
// Layouts, from runtime/runtime2.go (_func), runtime/symtabinl.go (inlinedCall),
// runtime/symtab.go (moduledata, pcvalue) and internal/abi/symtab.go:
const (
	go120Magic = 0xfffffff1

	funcHeaderSize     = 44 // _func up to and including nfuncdata
	funcNameOff        = 4  // _func.nameOff int32
	funcNPCDataOff     = 28 // _func.npcdata uint32
	funcNFuncDataOff   = 43 // _func.nfuncdata uint8
	pcdataInlTreeIndex = 2  // abi.PCDATA_InlTreeIndex
	funcdataInlTree    = 3  // abi.FUNCDATA_InlTree
	inlinedCallSize    = 16 // inlinedCall{funcID uint8; _ [3]byte; nameOff, parentPc, startLine int32}

	// moduledata word indexes: pcHeader, then funcnametab (a slice); text after
	// 1 + 6 slices×3 + findfunctab + minpc, maxpc; gofunc after text, etext + 8 section
	// bounds + covctrs, ecovctrs + end, gcdata, gcbss + types, etypes + rodata.
	mdFuncnametab = 1
	mdText        = 22
	mdGofunc      = 40
	mdWords       = mdGofunc + 1

	// maxInlineDepth bounds the walk up an inline tree (corrupt data could loop).
	maxInlineDepth = 64
	// maxGofuncBytes bounds the copy of go:func.* when it lies outside the pclntab
	// (before Go 1.26).
	maxGofuncBytes = 64 << 20
	// maxInlineNames bounds the names of inlined functions an inlineTable keeps; the
	// cache starts afresh beyond it.
	maxInlineNames = 4096
)

// inlineCall is one inlined function at a pc, with the address whose position is its
// call site in the caller.
type inlineCall struct {
	name     string
	parentPC uint64
}

// inlineTable reads the inline trees of one Go binary.
type inlineTable struct {
	order       binary.ByteOrder
	quantum     uint64
	textStart   uint64
	nfunc       int
	funcnametab []byte
	pctab       []byte
	pclntable   []byte // functab, then the _func records it points to
	gofunc      []byte // go:func.*: the inline trees are in there
	names       map[int32]string
}

// newInlineTable prepares the inline trees of the pclntab data, with gofunc the bytes
// of go:func.*. It returns an error when the table is
// not a Go 1.20+ one or is inconsistent.
func newInlineTable(data []byte, textStart uint64, gofunc []byte) (*inlineTable, error) {
	if len(data) < 8+8*8 {
		return nil, errors.New("pclntab too short")
	}
	t := &inlineTable{textStart: textStart, gofunc: gofunc, names: make(map[int32]string)}
	switch {
	case binary.LittleEndian.Uint32(data) == go120Magic:
		t.order = binary.LittleEndian
	case binary.BigEndian.Uint32(data) == go120Magic:
		t.order = binary.BigEndian
	default:
		return nil, fmt.Errorf("pclntab magic %#x: inline trees are read from Go 1.20 on", binary.LittleEndian.Uint32(data))
	}
	t.quantum = uint64(data[6])
	ptr := int(data[7])
	word := func(i int) uint64 {
		if ptr == 4 {
			return uint64(t.order.Uint32(data[8+i*4:]))
		}
		return t.order.Uint64(data[8+i*8:])
	}
	if ptr != 4 && ptr != 8 {
		return nil, fmt.Errorf("pclntab pointer size %d", ptr)
	}
	sub := func(i int) ([]byte, error) {
		off := word(i)
		if off > uint64(len(data)) {
			return nil, fmt.Errorf("pclntab header word %d: offset %d past %d bytes", i, off, len(data))
		}
		return data[off:], nil
	}
	nfunc := word(0)
	var err error
	if t.funcnametab, err = sub(3); err != nil {
		return nil, err
	}
	if t.pctab, err = sub(6); err != nil {
		return nil, err
	}
	if t.pclntable, err = sub(7); err != nil {
		return nil, err
	}
	if nfunc > uint64(len(t.pclntable))/8 {
		return nil, fmt.Errorf("pclntab: %d functions do not fit in %d bytes", nfunc, len(t.pclntable))
	}
	t.nfunc = int(nfunc)
	return t, nil
}

// calls returns the functions inlined at pc, innermost first, and the entry of the
// function they were all inlined into; none when pc is not in inlined code.
func (t *inlineTable) calls(pc uint64) (entry uint64, calls []inlineCall) {
	defer func() {
		if recover() != nil { // bounds on corrupt data: no inline frames
			entry, calls = 0, nil
		}
	}()
	if pc < t.textStart {
		return 0, nil
	}
	off := uint32(pc - t.textStart)
	i := sort.Search(t.nfunc, func(i int) bool { return t.order.Uint32(t.pclntable[8*(i+1):]) > off })
	if i >= t.nfunc {
		return 0, nil
	}
	entryOff := t.order.Uint32(t.pclntable[8*i:])
	if off < entryOff {
		return 0, nil
	}
	f := t.pclntable[t.order.Uint32(t.pclntable[8*i+4:]):]
	entry = t.textStart + uint64(entryOff)
	npcdata := t.order.Uint32(f[funcNPCDataOff:])
	nfuncdata := uint32(f[funcNFuncDataOff])
	if npcdata <= pcdataInlTreeIndex || nfuncdata <= funcdataInlTree || t.gofunc == nil {
		return 0, nil
	}
	indexTable := t.order.Uint32(f[funcHeaderSize+4*pcdataInlTreeIndex:])
	treeOff := t.order.Uint32(f[funcHeaderSize+4*npcdata+4*funcdataInlTree:])
	if indexTable == 0 || treeOff == ^uint32(0) {
		return 0, nil
	}
	tree := t.gofunc[treeOff:]
	at := pc
	for range maxInlineDepth {
		ix := t.pcvalue(indexTable, entry, at)
		if ix < 0 {
			return entry, calls
		}
		c := tree[int(ix)*inlinedCallSize:]
		nameOff := int32(t.order.Uint32(c[4:]))
		parentPC := entry + uint64(int64(int32(t.order.Uint32(c[8:]))))
		calls = append(calls, inlineCall{name: t.name(nameOff), parentPC: parentPC})
		at = parentPC
	}
	return 0, nil // deeper than any real inlining: corrupt
}

func (t *inlineTable) name(off int32) string {
	if s, ok := t.names[off]; ok {
		return s
	}
	b := t.funcnametab[off:]
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	s := string(b)
	if len(t.names) >= maxInlineNames {
		clear(t.names)
	}
	t.names[off] = s
	return s
}

// pcvalue decodes the pc-value table at pctab[off:] for a function starting at entry
// and returns the value at target, -1 when there is none (runtime.pcvalue).
func (t *inlineTable) pcvalue(off uint32, entry, target uint64) int32 {
	p := t.pctab[off:]
	pc, val := entry, int32(-1)
	for first := true; ; first = false {
		uv, n := binary.Uvarint(p)
		if n <= 0 || (uv == 0 && !first) {
			return -1
		}
		p = p[n:]
		val += int32(-(uint32(uv) & 1) ^ (uint32(uv) >> 1))
		pcDelta, n := binary.Uvarint(p)
		if n <= 0 {
			return -1
		}
		p = p[n:]
		pc += pcDelta * t.quantum
		if target < pc {
			return val
		}
	}
}

// goFunc finds the bytes of go:func.* for the pclntab at pclnAddr: from the symbol
// table, else from runtime.firstmoduledata, found by its first two words (pcHeader and
// funcnametab) in the data sections of a stripped binary. It also returns
// moduledata.text when the moduledata was found (0 otherwise): the true text start of
// a stripped externally linked binary.
func (o *elfObject) goFunc(data []byte, pclnAddr uint64, symtab []elf.Symbol) (gofunc []byte, text uint64) {
	var addr uint64
	for _, s := range symtab {
		if (s.Name == "go:func.*" || s.Name == "go.func.*") && s.Value != 0 {
			addr = s.Value
			break
		}
	}
	if addr == 0 {
		ptr := int(data[7])
		funcnameOff := uint64(0)
		if ptr == 8 {
			funcnameOff = o.f.ByteOrder.Uint64(data[8+3*8:])
		} else if ptr == 4 {
			funcnameOff = uint64(o.f.ByteOrder.Uint32(data[8+3*4:]))
		}
		md := o.findModuledata(ptr, pclnAddr, pclnAddr+funcnameOff)
		if md == nil {
			return nil, 0
		}
		addr, text = md[mdGofunc], md[mdText]
	}
	if addr >= pclnAddr && addr-pclnAddr < uint64(len(data)) {
		return data[addr-pclnAddr:], text // Go 1.26: inside the pclntab
	}
	for _, s := range o.f.Sections {
		if s.Type == elf.SHT_NOBITS || addr < s.Addr || addr-s.Addr >= s.Size || o.checkSection(s, uint64(o.size)) != nil {
			continue
		}
		n := min(s.Size-(addr-s.Addr), maxGofuncBytes)
		b, err := o.sectionRange(s, addr-s.Addr, n)
		if err != nil {
			return nil, text
		}
		return b, text
	}
	return nil, text
}

// findModuledata returns the words of the moduledata whose pcHeader is pclnAddr and
// whose funcnametab starts at funcnametab, nil when there is none.
func (o *elfObject) findModuledata(ptr int, pclnAddr, funcnametab uint64) []uint64 {
	if ptr != 4 && ptr != 8 {
		return nil
	}
	readWord := func(b []byte) uint64 {
		if ptr == 4 {
			return uint64(o.f.ByteOrder.Uint32(b))
		}
		return o.f.ByteOrder.Uint64(b)
	}
	// Go 1.26 has a section of its own for it; before, it is in .noptrdata (or
	// .data.rel.ro); look there first, then in any other writable data.
	var sections []*elf.Section
	for _, name := range []string{".go.module", ".noptrdata", ".data.rel.ro"} {
		if s := o.f.Section(name); s != nil {
			sections = append(sections, s)
		}
	}
	for _, s := range o.f.Sections {
		if s.Type == elf.SHT_PROGBITS && s.Flags&(elf.SHF_ALLOC|elf.SHF_WRITE) == elf.SHF_ALLOC|elf.SHF_WRITE && !slices.Contains(sections, s) {
			sections = append(sections, s)
		}
	}
	const chunk = 64 << 10
	buf := make([]byte, chunk+mdWords*8)
	for _, s := range sections {
		if s.Type == elf.SHT_NOBITS || o.checkSection(s, uint64(o.size)) != nil {
			continue
		}
		for off := uint64(0); off+uint64(mdWords*ptr) <= s.Size; off += chunk {
			n := min(uint64(len(buf)), s.Size-off)
			b := buf[:n]
			if _, err := s.ReadAt(b, int64(off)); err != nil {
				break
			}
			for i := 0; i+mdWords*ptr <= len(b) && i < chunk; i += ptr {
				if readWord(b[i:]) != pclnAddr || readWord(b[i+mdFuncnametab*ptr:]) != funcnametab {
					continue
				}
				md := make([]uint64, mdWords)
				for w := range md {
					md[w] = readWord(b[i+w*ptr:])
				}
				return md
			}
		}
	}
	return nil
}
