package unwind

import (
	"fmt"
	"math"
)

// DWARF register numbers of x86-64.
const (
	regRBP = 6
	regRSP = 7
	regRA  = 16 // the return address (RIP)
)

// Register rules (of RBP and the return address; other registers do not
// matter to the BPF program).
const (
	ruleUnset      uint8 = iota // no rule given: same value
	ruleSame                    // DW_CFA_same_value
	ruleUndefined               // DW_CFA_undefined
	ruleOffset                  // saved at CFA+off
	ruleValOffset               // the value is CFA+off
	ruleRegister                // saved in another register
	ruleExpression              // DW_CFA_expression / val_expression
)

type regRule struct {
	kind uint8
	off  int64
}

// CFA rules.
const (
	cfaReg  uint8 = iota
	cfaPLT        // the PLT expression, off is its RSP offset
	cfaExpr       // any other expression
)

type cfaRule struct {
	kind uint8
	reg  uint64
	off  int64
}

// state is the row of a CFA program being evaluated.
type state struct {
	cfa     cfaRule
	rbp, ra regRule
}

// initialState is the state before a CIE's initial instructions.
var initialState = state{cfa: cfaRule{kind: cfaReg, reg: regRSP, off: 8}}

// evaluator runs CFA programs; it is reused for every program of a file.
type evaluator struct {
	limits Limits
	stack  []state
	stats  *Stats
	out    *builder // receives the rows of FDE programs
}

// run evaluates prog (at offset progOff of sec) from *st. For a CIE's
// initial instructions out is nil and the state after them is left in *st;
// for an FDE, out receives every row.
func (ev *evaluator) run(sec *section, c *cie, st *state, prog []byte, progOff int, f *fde) error {
	p := program{ev: ev, sec: sec, c: c, st: st, r: reader{b: prog}, progOff: progOff}
	if f != nil {
		p.loc, p.end = f.begin, f.end
		p.out = ev.out
	}
	ev.stack = ev.stack[:0]
	for p.r.pos < len(prog) {
		if f != nil && p.loc >= p.end {
			return nil
		}
		if err := p.step(p.r.u8()); err != nil {
			return err
		}
	}
	if p.r.bad {
		return p.bad("truncated CFA instruction")
	}
	if p.out != nil && p.loc < p.end {
		return p.out.emit(p.loc, p.end, st)
	}
	return nil
}

// program is one run of a CFA program: the reader over its instructions, the
// state they change, and the address range whose rows they describe.
type program struct {
	ev       *evaluator
	sec      *section
	c        *cie
	st       *state
	r        reader
	progOff  int // offset of the program in sec, for error messages
	loc, end uint64
	out      *builder // nil for a CIE's initial instructions
}

// bad is an error at the instruction being read.
func (p *program) bad(what string) error {
	return p.sec.errAt(p.progOff+p.r.pos, what)
}

// advance moves the current location to `to`, emitting the row of the state
// that held up to it.
func (p *program) advance(to uint64) error {
	if p.out == nil {
		return nil // advances in a CIE: meaningless, ignored
	}
	if to < p.loc {
		return p.bad("DW_CFA_set_loc backwards")
	}
	if to > p.end {
		to = p.end
	}
	if to > p.loc {
		if err := p.out.emit(p.loc, to, p.st); err != nil {
			return err
		}
		p.loc = to
	}
	return nil
}

// step evaluates one instruction whose opcode op was just read. The three
// primary opcodes carry their operand in op's low six bits; the others are
// extended instructions whose operands follow.
func (p *program) step(op byte) error {
	c, st := p.c, p.st
	switch op >> 6 {
	case 1: // DW_CFA_advance_loc
		return p.advance(p.loc + uint64(op&0x3f)*c.codeAlign)
	case 2: // DW_CFA_offset
		p.ev.setReg(st, uint64(op&0x3f), ruleOffset, int64(p.r.uleb())*c.dataAlign)
		return nil
	case 3: // DW_CFA_restore
		p.ev.restore(c, st, uint64(op&0x3f))
		return nil
	}
	var err error
	switch op {
	case 0x00: // DW_CFA_nop
	case 0x01, 0x02, 0x03, 0x04:
		err = p.location(op)
	case 0x0a, 0x0b:
		err = p.rememberOrRestore(op)
	case 0x0c, 0x0d, 0x0e, 0x0f, 0x12, 0x13:
		p.cfa(op)
	default:
		err = p.register(op)
	}
	if err != nil {
		return err
	}
	if p.r.bad {
		return p.bad("truncated CFA instruction")
	}
	return nil
}

// location evaluates the instructions that move the current location.
func (p *program) location(op byte) error {
	c := p.c
	switch op {
	case 0x01: // DW_CFA_set_loc
		var to uint64
		ok := true
		if p.sec.eh {
			to, ok = p.r.encoded(c.fdeEnc, p.sec.addr+uint64(p.progOff))
		} else {
			to = p.r.fixed(c.addrSize)
		}
		if !ok {
			return p.bad("DW_CFA_set_loc with an unknown pointer encoding")
		}
		if p.r.bad {
			return nil // the caller reports the truncation
		}
		return p.advance(to)
	case 0x02: // DW_CFA_advance_loc1
		return p.advance(p.loc + p.r.fixed(1)*c.codeAlign)
	case 0x03: // DW_CFA_advance_loc2
		return p.advance(p.loc + p.r.fixed(2)*c.codeAlign)
	default: // 0x04, DW_CFA_advance_loc4
		return p.advance(p.loc + p.r.fixed(4)*c.codeAlign)
	}
}

// rememberOrRestore evaluates DW_CFA_remember_state (0x0a) and
// DW_CFA_restore_state (0x0b).
func (p *program) rememberOrRestore(op byte) error {
	ev := p.ev
	if op == 0x0a { // DW_CFA_remember_state
		if len(ev.stack) >= ev.limits.StateDepth {
			return fmt.Errorf("%s at offset 0x%x: DW_CFA_remember_state nested past %d: %w", p.sec.name, p.progOff+p.r.pos, ev.limits.StateDepth, ErrTooLarge)
		}
		ev.stack = append(ev.stack, *p.st)
		return nil
	}
	if len(ev.stack) == 0 {
		return p.bad("DW_CFA_restore_state without DW_CFA_remember_state")
	}
	// The CFA rule is restored with the registers (DWARF 5 6.4.2.4).
	*p.st = ev.stack[len(ev.stack)-1]
	ev.stack = ev.stack[:len(ev.stack)-1]
	return nil
}

// cfa evaluates the instructions that define the CFA rule.
func (p *program) cfa(op byte) {
	r, st, c := &p.r, p.st, p.c
	switch op {
	case 0x0c: // DW_CFA_def_cfa
		reg := r.uleb()
		st.cfa = cfaRule{kind: cfaReg, reg: reg, off: int64(r.uleb())}
	case 0x0d: // DW_CFA_def_cfa_register
		st.cfa.reg = r.uleb()
		if st.cfa.kind != cfaReg {
			st.cfa = cfaRule{kind: cfaReg, reg: st.cfa.reg}
		}
	case 0x0e: // DW_CFA_def_cfa_offset
		st.cfa.off = int64(r.uleb())
	case 0x0f: // DW_CFA_def_cfa_expression
		expr := r.block()
		if off, ok := pltExpression(expr); ok {
			st.cfa = cfaRule{kind: cfaPLT, off: off}
		} else {
			st.cfa = cfaRule{kind: cfaExpr}
		}
	case 0x12: // DW_CFA_def_cfa_sf
		reg := r.uleb()
		st.cfa = cfaRule{kind: cfaReg, reg: reg, off: r.sleb() * c.dataAlign}
	case 0x13: // DW_CFA_def_cfa_offset_sf
		st.cfa.off = r.sleb() * c.dataAlign
	}
}

// register evaluates the instructions that set a register's rule, and
// rejects an unknown opcode.
func (p *program) register(op byte) error {
	r, st, c, ev := &p.r, p.st, p.c, p.ev
	switch op {
	case 0x05: // DW_CFA_offset_extended
		reg := r.uleb()
		ev.setReg(st, reg, ruleOffset, int64(r.uleb())*c.dataAlign)
	case 0x06: // DW_CFA_restore_extended
		ev.restore(c, st, r.uleb())
	case 0x07: // DW_CFA_undefined
		ev.setReg(st, r.uleb(), ruleUndefined, 0)
	case 0x08: // DW_CFA_same_value
		ev.setReg(st, r.uleb(), ruleSame, 0)
	case 0x09: // DW_CFA_register
		reg := r.uleb()
		ev.setReg(st, reg, ruleRegister, int64(r.uleb()))
	case 0x10, 0x16: // DW_CFA_expression, DW_CFA_val_expression
		reg := r.uleb()
		r.block()
		ev.setReg(st, reg, ruleExpression, 0)
	case 0x11: // DW_CFA_offset_extended_sf
		reg := r.uleb()
		ev.setReg(st, reg, ruleOffset, r.sleb()*c.dataAlign)
	case 0x14: // DW_CFA_val_offset
		reg := r.uleb()
		ev.setReg(st, reg, ruleValOffset, int64(r.uleb())*c.dataAlign)
	case 0x15: // DW_CFA_val_offset_sf
		reg := r.uleb()
		ev.setReg(st, reg, ruleValOffset, r.sleb()*c.dataAlign)
	case 0x2e: // DW_CFA_GNU_args_size: the stack pointer adjustment at a call; no rule changes
		r.uleb()
	case 0x2f: // DW_CFA_GNU_negative_offset_extended
		reg := r.uleb()
		ev.setReg(st, reg, ruleOffset, -int64(r.uleb())*c.dataAlign)
	default:
		return p.bad(fmt.Sprintf("unknown CFA instruction 0x%02x", op))
	}
	return nil
}

// block reads a ULEB128 length and that many bytes.
func (r *reader) block() []byte {
	n := r.uleb()
	if r.bad || n > uint64(len(r.b)-r.pos) {
		r.bad = true
		r.pos = len(r.b)
		return nil
	}
	b := r.b[r.pos : r.pos+int(n)]
	r.pos += int(n)
	return b
}

func (ev *evaluator) setReg(st *state, reg uint64, kind uint8, off int64) {
	switch reg {
	case regRBP:
		st.rbp = regRule{kind: kind, off: off}
	case regRA:
		st.ra = regRule{kind: kind, off: off}
	}
}

func (ev *evaluator) restore(c *cie, st *state, reg uint64) {
	switch reg {
	case regRBP:
		st.rbp = c.initial.rbp
	case regRA:
		st.ra = c.initial.ra
	}
}

// pltExpression recognises the CFA expression of PLT stubs:
// DW_OP_breg7 (rsp) off; DW_OP_breg16 (rip) 0; DW_OP_lit15; DW_OP_and;
// DW_OP_lit11; DW_OP_ge; DW_OP_lit3; DW_OP_shl; DW_OP_plus.
func pltExpression(e []byte) (int64, bool) {
	r := reader{b: e}
	if r.u8() != 0x77 { // DW_OP_breg7
		return 0, false
	}
	off := r.sleb()
	if r.bad || r.pos+len(pltTail) != len(e) || string(e[r.pos:]) != string(pltTail) {
		return 0, false
	}
	return off, true
}

var pltTail = []byte{0x80, 0x00, 0x3f, 0x1a, 0x3b, 0x2a, 0x33, 0x24, 0x22}

// row turns a state into a row at pc; an unsupported rule gives a CFANone row
// and counts its reason.
func (ev *evaluator) row(pc uint64, st *state) Row {
	if st.ra.kind == ruleUndefined {
		return Row{PC: pc, CFA: CFAEnd}
	}
	r := Row{PC: pc}
	switch st.cfa.kind {
	case cfaPLT:
		r.CFA = CFAPLT
	case cfaExpr:
		return ev.unsupported(pc, ReasonCFAExpression)
	default:
		switch st.cfa.reg {
		case regRSP:
			r.CFA = CFARSP
		case regRBP:
			r.CFA = CFARBP
		default:
			return ev.unsupported(pc, ReasonCFARegister)
		}
	}
	if st.cfa.off < math.MinInt32 || st.cfa.off > math.MaxInt32 {
		return ev.unsupported(pc, ReasonCFAOffset)
	}
	r.CFAOffset = int32(st.cfa.off)
	switch st.ra.kind {
	case ruleUnset, ruleSame:
	case ruleOffset:
		if st.ra.off != -8 {
			return ev.unsupported(pc, ReasonReturnAddress)
		}
	default:
		return ev.unsupported(pc, ReasonReturnAddress)
	}
	switch st.rbp.kind {
	case ruleUnset, ruleSame, ruleUndefined:
	case ruleOffset:
		if st.rbp.off == 0 || st.rbp.off < math.MinInt16 || st.rbp.off > math.MaxInt16 {
			return ev.unsupported(pc, ReasonRBPOffset)
		}
		r.RBPOffset = int16(st.rbp.off)
	case ruleRegister:
		return ev.unsupported(pc, ReasonRBPRegister)
	default:
		return ev.unsupported(pc, ReasonRBPExpression)
	}
	return r
}

func (ev *evaluator) unsupported(pc uint64, why Reason) Row {
	ev.stats.Unsupported[why]++
	return Row{PC: pc, CFA: CFANone}
}
