package unwind

import (
	"encoding/binary"
)

// The instructions the tests' CFA programs are written with.
const (
	opAdvance    = 0x40 // | delta
	opOffset     = 0x80 // | reg, then ULEB offset
	opRestore    = 0xc0 // | reg
	opUndefined  = 0x07
	opSameValue  = 0x08
	opRegister   = 0x09
	opRemember   = 0x0a
	opRestoreSt  = 0x0b
	opDefCFA     = 0x0c
	opDefCFAReg  = 0x0d
	opDefCFAOff  = 0x0e
	opDefCFAExpr = 0x0f
	opExpression = 0x10
	opDefCFASF   = 0x12
	opDefCFAOfSF = 0x13
	opValOffset  = 0x14
	opArgsSize   = 0x2e
	opNegOffset  = 0x2f
)

// The CIE initial instructions of x86-64 compilers: CFA = RSP+8, return
// address at CFA-8.
var x86Initial = []byte{opDefCFA, regRSP, 8, opOffset | regRA, 1}

// pltExpr is the PLT stubs' CFA expression (DW_CFA_def_cfa_expression).
var pltExpr = []byte{opDefCFAExpr, 11, 0x77, 0x08, 0x80, 0x00, 0x3f, 0x1a, 0x3b, 0x2a, 0x33, 0x24, 0x22}

// cfiWriter writes an .eh_frame or a .debug_frame: one CIE and FDEs.
type cfiWriter struct {
	eh   bool
	addr uint64
	b    []byte
	cie  int
}

func newCFI(eh bool, addr uint64, initial []byte) *cfiWriter {
	w := &cfiWriter{eh: eh, addr: addr}
	w.cie = len(w.b)
	body := []byte{}
	if eh {
		body = append(body, 0, 0, 0, 0, 1, 'z', 'R', 0, 1, 0x78, 16, 1, 0x1b) // id 0, v1, "zR", caf 1, daf -8, ra 16, pcrel|sdata4
	} else {
		body = append(body, 0xff, 0xff, 0xff, 0xff, 1, 0, 1, 0x78, 16) // id -1, v1, "", caf 1, daf -8, ra 16
	}
	w.entry(append(body, initial...))
	return w
}

// entry appends a length and body, padded with DW_CFA_nop to 8 bytes.
func (w *cfiWriter) entry(body []byte) {
	for (len(body)+4)%8 != 0 {
		body = append(body, 0)
	}
	w.b = binary.LittleEndian.AppendUint32(w.b, uint32(len(body)))
	w.b = append(w.b, body...)
}

// fde appends an FDE for [begin, begin+size) with the program prog.
func (w *cfiWriter) fde(begin, size uint64, prog []byte) *cfiWriter {
	var body []byte
	pos := len(w.b) + 4 // the CIE pointer's offset
	if w.eh {
		body = binary.LittleEndian.AppendUint32(body, uint32(pos-w.cie))
		pcField := w.addr + uint64(pos+4)
		body = binary.LittleEndian.AppendUint32(body, uint32(int32(int64(begin)-int64(pcField))))
		body = binary.LittleEndian.AppendUint32(body, uint32(size))
		body = append(body, 0) // augmentation data length
	} else {
		body = binary.LittleEndian.AppendUint32(body, uint32(w.cie))
		body = binary.LittleEndian.AppendUint64(body, begin)
		body = binary.LittleEndian.AppendUint64(body, size)
	}
	w.entry(append(body, prog...))
	return w
}

// section is the written section (with .eh_frame's terminator).
func (w *cfiWriter) section() testSection {
	if w.eh {
		return testSection{name: ".eh_frame", addr: w.addr, data: append(append([]byte{}, w.b...), 0, 0, 0, 0)}
	}
	return testSection{name: ".debug_frame", data: w.b}
}

// cat joins byte slices.
func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}
