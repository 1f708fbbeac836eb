package symbolize

import (
	"bytes"
	"debug/gosym"
	"encoding/binary"
	"fmt"
	"sort"
)

// goLines answers, for a pc in a Go binary's text, what debug/gosym's Table.PCToLine
// does: the function's name and entry, and the file and line at pc.
type goLines interface {
	// pcToLine returns ok false when no function contains pc; line is -1 and file ""
	// when the tables do not say.
	pcToLine(pc uint64) (fn string, entry uint64, file string, line int, ok bool)
	// funcs is the number of functions; bounds is [entry of the first, end of the last).
	funcs() int
	bounds() (lo, hi uint64)
}

// pclnLines reads a Go 1.18+ pclntab (magic 0xfffffff0 or 0xfffffff1) in place:
// nothing per function is built, a lookup searches the functab and decodes the
// function's pc-file and pc-line tables, and names are copied out of the table only
// when asked for (a bounded cache keeps the recent ones). debug/gosym.NewTable builds a
// Func, a Sym and a name string for every function up front: for a kube-apiserver,
// 200 000 functions, about 48 MiB beyond the 38 MiB pclntab and 0.3 s of CPU each time
// the table was read. The answers are gosym's, byte for byte (a test compares them at
// every function of real binaries); older pclntabs go through gosym.
type pclnLines struct {
	order                              binary.ByteOrder
	quantum                            uint32
	textStart                          uint64
	nfunc                              int
	funcnametab, cutab, filetab, pctab []byte
	funcdata                           []byte // the functab, then the _func records
	// names and files cache strings by offset, each up to maxInlineNames entries.
	names, files map[uint32]string
}

// checkDropEvery is how many functions newPclnLines checks between two drops of the
// pages read (about 1 MiB of function records).
const checkDropEvery = 16 << 10

// go118Magic is the pclntab magic of Go 1.18 and 1.19 (go120Magic from 1.20 on): the
// layout this reads, with 32-bit functab entries relative to the text start.
const go118Magic = 0xfffffff0

// newGoLines returns the line table of pclntab data whose functions count from
// textStart: read in place for Go 1.18+, through debug/gosym for older tables. drop,
// when not nil, gives back the pages of data read so far (data is mapped from a file):
// checking a table reads all its function records, which should not all be resident
// at once.
func newGoLines(data []byte, textStart uint64, drop func()) (goLines, error) {
	if len(data) >= 8 {
		for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
			if m := order.Uint32(data); m == go118Magic || m == go120Magic {
				return newPclnLines(data, order, textStart, drop)
			}
		}
	}
	tab, err := gosym.NewTable(nil, gosym.NewLineTable(data, textStart))
	if err != nil {
		return nil, err
	}
	return gosymLines{tab}, nil
}

func newPclnLines(data []byte, order binary.ByteOrder, textStart uint64, drop func()) (_ *pclnLines, err error) {
	defer func() {
		if recover() != nil {
			err = fmt.Errorf("pclntab: out-of-range offsets")
		}
	}()
	if len(data) < 16 || data[4] != 0 || data[5] != 0 ||
		(data[6] != 1 && data[6] != 2 && data[6] != 4) || (data[7] != 4 && data[7] != 8) {
		return nil, fmt.Errorf("pclntab: bad header")
	}
	ptr := int(data[7])
	word := func(i int) uint64 {
		if ptr == 4 {
			return uint64(order.Uint32(data[8+i*4:]))
		}
		return order.Uint64(data[8+i*8:])
	}
	sub := func(i int) []byte { return data[word(i):] }
	t := &pclnLines{
		order:       order,
		quantum:     uint32(data[6]),
		textStart:   textStart,
		funcnametab: sub(3),
		cutab:       sub(4),
		filetab:     sub(5),
		pctab:       sub(6),
		funcdata:    sub(7),
		names:       make(map[uint32]string),
		files:       make(map[uint32]string),
	}
	nfunc := word(0)
	if nfunc == 0 || nfunc > maxGoFuncs || (2*nfunc+1)*4 > uint64(len(t.funcdata)) {
		return nil, fmt.Errorf("pclntab: %d functions (unsupported version or corrupt)", nfunc)
	}
	t.nfunc = int(nfunc)
	// What gosym's go12Funcs reads of every function, so that a table it would have
	// refused (a panic there gives no functions) is refused here too rather than
	// failing lookup by lookup.
	lastNUL := uint64(bytes.LastIndexByte(t.funcnametab, 0))
	for i := range t.nfunc {
		if drop != nil && i%checkDropEvery == checkDropEvery-1 {
			drop()
		}
		off := uint64(t.order.Uint32(t.funcdata[(2*i+1)*4:]))
		if off+16 > uint64(len(t.funcdata)) {
			return nil, fmt.Errorf("pclntab: function %d at offset %d past the table", i, off)
		}
		if nameOff := uint64(t.order.Uint32(t.funcdata[off+4:])); lastNUL == ^uint64(0) || nameOff > lastNUL {
			return nil, fmt.Errorf("pclntab: function %d's name at offset %d past the names", i, nameOff)
		}
	}
	return t, nil
}

func (t *pclnLines) funcs() int { return t.nfunc }

func (t *pclnLines) bounds() (lo, hi uint64) { return t.pc(0), t.pc(t.nfunc) }

// pc is the entry of function i (i = nfunc: the end of the last one).
func (t *pclnLines) pc(i int) uint64 { return uint64(t.order.Uint32(t.funcdata[8*i:])) + t.textStart }

// field is the nth 32-bit field of the _func at off (1: nameOff, 5: pcfile, 6: pcln,
// 8: cuOffset); field 0 is the entry offset.
func (t *pclnLines) field(off uint32, n uint32) uint32 { return t.order.Uint32(t.funcdata[off+4*n:]) }

func (t *pclnLines) pcToLine(pc uint64) (fn string, entry uint64, file string, line int, ok bool) {
	defer func() {
		if recover() != nil {
			fn, entry, file, line, ok = "", 0, "", 0, false
		}
	}()
	if pc < t.pc(0) || pc >= t.pc(t.nfunc) {
		return "", 0, "", 0, false
	}
	i := sort.Search(t.nfunc, func(i int) bool { return t.pc(i) > pc }) - 1
	off := t.order.Uint32(t.funcdata[8*i+4:])
	entry = uint64(t.field(off, 0)) + t.textStart
	fn = t.str(t.names, t.funcnametab, t.field(off, 1))
	return fn, entry, t.file(off, entry, pc), t.line(off, entry, pc), true
}

// line is gosym's go12PCToLine for the function at off.
func (t *pclnLines) line(off uint32, entry, pc uint64) (line int) {
	defer func() {
		if recover() != nil {
			line = -1
		}
	}()
	return int(t.pcvalue(t.field(off, 6), entry, pc))
}

// file is gosym's go12PCToFile (Go 1.16+ branch) for the function at off.
func (t *pclnLines) file(off uint32, entry, pc uint64) (file string) {
	defer func() {
		if recover() != nil {
			file = ""
		}
	}()
	fno := t.pcvalue(t.field(off, 5), entry, pc)
	if fno < 0 {
		return ""
	}
	if fnoff := t.order.Uint32(t.cutab[(t.field(off, 8)+uint32(fno))*4:]); fnoff != ^uint32(0) {
		return t.str(t.files, t.filetab, fnoff)
	}
	return ""
}

// str is the NUL-terminated string at tab[off:], cached in cache.
func (t *pclnLines) str(cache map[uint32]string, tab []byte, off uint32) string {
	if s, ok := cache[off]; ok {
		return s
	}
	i := bytes.IndexByte(tab[off:], 0)
	s := string(tab[off : off+uint32(i)])
	if len(cache) >= maxInlineNames {
		clear(cache)
	}
	cache[off] = s
	return s
}

// pcvalue is gosym's LineTable.pcvalue: the value at targetpc of the pc-value table at
// pctab[off:] of the function starting at entry, -1 when there is none.
func (t *pclnLines) pcvalue(off uint32, entry, targetpc uint64) int32 {
	p := t.pctab[off:]
	val := int32(-1)
	pc := entry
	for t.step(&p, &pc, &val, pc == entry) {
		if targetpc < pc {
			return val
		}
	}
	return -1
}

func (t *pclnLines) step(p *[]byte, pc *uint64, val *int32, first bool) bool {
	uvdelta := readvarint(p)
	if uvdelta == 0 && !first {
		return false
	}
	if uvdelta&1 != 0 {
		uvdelta = ^(uvdelta >> 1)
	} else {
		uvdelta >>= 1
	}
	*pc += uint64(readvarint(p) * t.quantum)
	*val += int32(uvdelta)
	return true
}

func readvarint(pp *[]byte) uint32 {
	var v, shift uint32
	p := *pp
	for shift = 0; ; shift += 7 {
		b := p[0]
		p = p[1:]
		v |= (uint32(b) & 0x7F) << shift
		if b&0x80 == 0 {
			break
		}
	}
	*pp = p
	return v
}

// gosymLines is a pclntab older than Go 1.18, through debug/gosym.
type gosymLines struct{ t *gosym.Table }

func (g gosymLines) pcToLine(pc uint64) (fn string, entry uint64, file string, line int, ok bool) {
	file, line, f := g.t.PCToLine(pc)
	if f == nil {
		return "", 0, "", 0, false
	}
	return f.Name, f.Entry, file, line, true
}

func (g gosymLines) funcs() int { return len(g.t.Funcs) }

func (g gosymLines) bounds() (lo, hi uint64) {
	if len(g.t.Funcs) == 0 {
		return 0, 0
	}
	return g.t.Funcs[0].Entry, g.t.Funcs[len(g.t.Funcs)-1].End
}
