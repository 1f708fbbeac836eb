package unwind

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
	"math"
)

// section is one call frame section: .eh_frame or .debug_frame.
type section struct {
	name string
	data []byte
	addr uint64 // the section's virtual address, the base of pcrel pointers
	eh   bool   // .eh_frame (else .debug_frame): CIE ids and pointers differ
	cies map[uint64]*cie
}

// cie is a parsed Common Information Entry.
type cie struct {
	codeAlign uint64
	dataAlign int64
	raReg     uint64
	fdeEnc    byte // pointer encoding of the FDEs' addresses (.eh_frame)
	addrSize  int  // size of the FDEs' addresses (.debug_frame)
	aug       bool // 'z': FDEs carry augmentation data
	ok        bool // false: an augmentation this package does not know; its FDEs are skipped
	initial   state
}

// fde is an FDE's header; its program is data[prog:progEnd] of its section.
type fde struct {
	begin, end    uint64
	cie           *cie
	sec           *section
	off           uint32 // offset of the entry, for errors
	prog, progEnd uint32
}

// Pointer encodings (DW_EH_PE_*) of .eh_frame.
const (
	peAbsptr  = 0x00
	peULEB    = 0x01
	peUdata2  = 0x02
	peUdata4  = 0x03
	peUdata8  = 0x04
	peSLEB    = 0x09
	peSdata2  = 0x0a
	peSdata4  = 0x0b
	peSdata8  = 0x0c
	pePCRel   = 0x10
	peOmit    = 0xff
	peIndir   = 0x80
	peAppMask = 0x70
)

// reader reads little-endian DWARF values; a read past the end sets bad and
// returns zero, so that a caller checks once per entry.
type reader struct {
	b   []byte
	pos int
	bad bool
}

func (r *reader) u8() byte {
	if r.pos >= len(r.b) {
		r.bad = true
		return 0
	}
	v := r.b[r.pos]
	r.pos++
	return v
}

func (r *reader) fixed(n int) uint64 {
	if n > len(r.b)-r.pos {
		r.bad = true
		r.pos = len(r.b)
		return 0
	}
	var v uint64
	switch n {
	case 1:
		v = uint64(r.b[r.pos])
	case 2:
		v = uint64(binary.LittleEndian.Uint16(r.b[r.pos:]))
	case 4:
		v = uint64(binary.LittleEndian.Uint32(r.b[r.pos:]))
	case 8:
		v = binary.LittleEndian.Uint64(r.b[r.pos:])
	default:
		r.bad = true
	}
	r.pos += n
	return v
}

// leb reads one LEB128 number: its low 64 bits, the bits it had, and its last byte
// (0, 0, 0 when the data ends inside it).
func (r *reader) leb() (v uint64, shift uint, last byte) {
	for {
		if r.pos >= len(r.b) {
			r.bad = true
			return 0, 0, 0
		}
		c := r.b[r.pos]
		r.pos++
		if shift < 64 {
			v |= uint64(c&0x7f) << shift
		}
		shift += 7
		if c&0x80 == 0 {
			return v, shift, c
		}
	}
}

func (r *reader) uleb() uint64 {
	v, _, _ := r.leb()
	return v
}

func (r *reader) sleb() int64 {
	v, shift, c := r.leb()
	if shift < 64 && c&0x40 != 0 {
		v |= ^uint64(0) << shift
	}
	return int64(v)
}

// encoded reads a pointer of encoding enc at r.pos; pcBase is the address of
// r.b[0]. ok is false for an encoding this package does not evaluate.
func (r *reader) encoded(enc byte, pcBase uint64) (v uint64, ok bool) {
	if enc == peOmit {
		return 0, true
	}
	at := pcBase + uint64(r.pos)
	switch enc & 0x0f {
	case peAbsptr, peUdata8, peSdata8:
		v = r.fixed(8)
	case peULEB:
		v = r.uleb()
	case peUdata2:
		v = r.fixed(2)
	case peSdata2:
		v = uint64(int64(int16(r.fixed(2))))
	case peUdata4:
		v = r.fixed(4)
	case peSdata4:
		v = uint64(int64(int32(r.fixed(4))))
	case peSLEB:
		v = uint64(r.sleb())
	default:
		return 0, false
	}
	switch enc & peAppMask {
	case 0:
	case pePCRel:
		v += at
	default:
		return 0, false
	}
	if enc&peIndir != 0 {
		return 0, false
	}
	return v, true
}

// errAt is the error for malformed data at off of s.
func (s *section) errAt(off int, what string) error {
	return fmt.Errorf("%s at offset 0x%x: %s: %w", s.name, off, what, ErrMalformed)
}

// entry reads the header of the entry at off: its length fields, the offset
// where its body starts (after the CIE id / pointer), its end, and the id.
// isCIE says whether it is a CIE; for an FDE, ciePos is its CIE's offset.
func (s *section) entry(off int) (body, end int, isCIE bool, ciePos uint64, err error) {
	r := reader{b: s.data, pos: off}
	length := r.fixed(4)
	dwarf64 := false
	if length == 0xffffffff {
		length = r.fixed(8)
		dwarf64 = true
	}
	if r.bad {
		return 0, 0, false, 0, s.errAt(off, "truncated entry length")
	}
	if length == 0 {
		return r.pos, r.pos, false, 0, nil // a terminator (.eh_frame) or padding
	}
	if length > uint64(len(s.data)-r.pos) {
		return 0, 0, false, 0, s.errAt(off, fmt.Sprintf("entry length %d past the section's end", length))
	}
	end = r.pos + int(length)
	idPos := r.pos
	idSize := 4
	if dwarf64 && !s.eh {
		idSize = 8
	}
	r.b = s.data[:end]
	id := r.fixed(idSize)
	if r.bad {
		return 0, 0, false, 0, s.errAt(off, "truncated CIE id")
	}
	switch {
	case s.eh:
		isCIE = id == 0
		if !isCIE {
			if id > uint64(idPos) {
				return 0, 0, false, 0, s.errAt(off, "CIE pointer before the section")
			}
			ciePos = uint64(idPos) - id
		}
	case idSize == 4:
		isCIE = id == 0xffffffff
		ciePos = id
	default:
		isCIE = id == math.MaxUint64
		ciePos = id
	}
	return r.pos, end, isCIE, ciePos, nil
}

// cieAt parses (once) the CIE at off.
func (s *section) cieAt(off uint64, ev *evaluator) (*cie, error) {
	if c, ok := s.cies[off]; ok {
		return c, nil
	}
	if off >= uint64(len(s.data)) {
		return nil, s.errAt(int(off), "CIE offset past the section's end")
	}
	body, end, isCIE, _, err := s.entry(int(off))
	if err != nil {
		return nil, err
	}
	if !isCIE || body == end {
		return nil, s.errAt(int(off), "FDE's CIE pointer does not point at a CIE")
	}
	c, prog, err := s.parseCIE(off, body, end)
	if err != nil {
		return nil, err
	}
	if c.ok {
		if end-prog > ev.limits.Program {
			return nil, fmt.Errorf("%s at offset 0x%x: CIE program of %d bytes: %w", s.name, off, end-prog, ErrTooLarge)
		}
		c.initial = initialState
		if err := ev.run(s, c, &c.initial, s.data[prog:end], prog, nil); err != nil {
			return nil, err
		}
	}
	if s.cies == nil {
		s.cies = make(map[uint64]*cie)
	}
	s.cies[off] = c
	return c, nil
}

// parseCIE reads the fields of the CIE at off whose body is s.data[body:end],
// and returns it with the offset of its initial instructions. c.ok is false
// for a CIE this package cannot read (a version, address size, return address
// register or augmentation it does not know); its FDEs are then skipped.
func (s *section) parseCIE(off uint64, body, end int) (c *cie, prog int, err error) {
	c = &cie{addrSize: 8, fdeEnc: peAbsptr}
	r := reader{b: s.data[:end], pos: body}
	version := r.u8()
	augStart := r.pos
	for r.pos < end && s.data[r.pos] != 0 {
		r.pos++
	}
	aug := string(s.data[augStart:r.pos])
	r.u8() // the NUL
	segSize := byte(0)
	if version >= 4 {
		c.addrSize = int(r.u8())
		segSize = r.u8()
	}
	c.codeAlign = r.uleb()
	c.dataAlign = r.sleb()
	if version == 1 {
		c.raReg = uint64(r.u8())
	} else {
		c.raReg = r.uleb()
	}
	if r.bad {
		return nil, 0, s.errAt(int(off), "truncated CIE")
	}
	c.ok = version == 1 || version == 3 || version == 4
	c.ok = c.ok && (c.addrSize == 8 || c.addrSize == 4) && segSize == 0 && c.raReg == regRA
	if len(aug) > 0 && aug[0] == 'z' {
		c.aug = true
		n := r.uleb()
		if r.bad || n > uint64(end-r.pos) {
			return nil, 0, s.errAt(int(off), "CIE augmentation data past the entry's end")
		}
		augEnd := r.pos + int(n)
		if err := s.augmentation(c, aug[1:], reader{b: s.data[:augEnd], pos: r.pos}, off); err != nil {
			return nil, 0, err
		}
		r.pos = augEnd
	} else if aug != "" {
		c.ok = false // such as GCC's ancient "eh"
	}
	return c, r.pos, nil
}

// augmentation reads ar, the augmentation data of the 'z' CIE c at off, as
// the letters that follow the 'z' describe it: the FDE pointer encoding is
// the part that matters here.
func (s *section) augmentation(c *cie, letters string, ar reader, off uint64) error {
chars:
	for i := 0; i < len(letters); i++ {
		switch letters[i] {
		case 'R':
			c.fdeEnc = ar.u8()
		case 'L':
			ar.u8()
		case 'P':
			enc := ar.u8()
			if _, ok := ar.encoded(enc&^peIndir, s.addr); !ok {
				c.ok = false
			}
		case 'S', 'B', 'G':
		default:
			// An unknown letter: its data cannot be skipped, so the FDE
			// encoding is only known if 'R' came before it.
			if c.fdeEnc == peAbsptr && s.eh {
				c.ok = false
			}
			break chars
		}
	}
	if ar.bad {
		return s.errAt(int(off), "truncated CIE augmentation data")
	}
	return nil
}

// fdes appends the FDEs of s to out. skipped counts the FDEs of a CIE this
// package cannot read and those with a pointer encoding it does not know.
func (s *section) fdes(out []fde, ev *evaluator, skipped *int) ([]fde, error) {
	for off := 0; off < len(s.data); {
		body, end, isCIE, ciePos, err := s.entry(off)
		if err != nil {
			return out, err
		}
		if body == end {
			if s.eh && end-off == 4 {
				break // the terminator
			}
			off = end
			continue
		}
		if isCIE {
			off = end
			continue
		}
		c, err := s.cieAt(ciePos, ev)
		if err != nil {
			return out, fmt.Errorf("%s FDE at offset 0x%x: %w", s.name, off, err)
		}
		if !c.ok {
			*skipped++
			off = end
			continue
		}
		r := reader{b: s.data[:end], pos: body}
		var begin, size uint64
		ok := true
		if s.eh {
			begin, ok = r.encoded(c.fdeEnc, s.addr)
			if ok {
				size, ok = r.encoded(c.fdeEnc&0x0f, 0)
			}
		} else {
			begin = r.fixed(c.addrSize)
			size = r.fixed(c.addrSize)
		}
		if c.aug {
			n := r.uleb()
			if n > uint64(end-r.pos) {
				return out, s.errAt(off, "FDE augmentation data past the entry's end")
			}
			r.pos += int(n)
		}
		if r.bad {
			return out, s.errAt(off, "truncated FDE")
		}
		if end-r.pos > ev.limits.Program {
			return out, fmt.Errorf("%s at offset 0x%x: FDE program of %d bytes: %w", s.name, off, end-r.pos, ErrTooLarge)
		}
		if !ok || begin+size < begin {
			*skipped++
			off = end
			continue
		}
		if len(out) >= ev.limits.Rows {
			return out, fmt.Errorf("%s: more than %d FDEs: %w", s.name, ev.limits.Rows, ErrTooLarge)
		}
		out = append(out, fde{begin: begin, end: begin + size, cie: c, sec: s, off: uint32(off), prog: uint32(r.pos), progEnd: uint32(end)})
		off = end
	}
	return out, nil
}

// loadSection reads s into a section.
func loadSection(s *elf.Section, eh bool, limit int64) (*section, error) {
	data, err := readSection(s, limit)
	if err != nil {
		return nil, err
	}
	return &section{name: s.Name, data: data, addr: s.Addr, eh: eh}, nil
}
