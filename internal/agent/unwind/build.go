package unwind

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"sort"
)

// The errors a caller may test for with errors.Is.
var (
	// ErrUnsupportedArch: the file is not an x86-64 ELF file; the agent keeps
	// frame-pointer unwinding for it.
	ErrUnsupportedArch = errors.New("unwind tables are built for x86-64 only")
	// ErrMalformed: the call frame information cannot be parsed (the error
	// names the section and the offset).
	ErrMalformed = errors.New("malformed call frame information")
	// ErrTooLarge: a section, a CFA program or the table is past its limit.
	ErrTooLarge = errors.New("past the limit")
)

// Limits bound the work and memory of building one table. A zero field takes
// its default (DefaultLimits).
type Limits struct {
	// SectionSize is the largest .eh_frame or .debug_frame read (uncompressed).
	SectionSize int64
	// Rows is the largest table built (and the most FDEs read from a section).
	Rows int
	// Program is the largest CFA program (the instructions of one CIE or FDE).
	Program int
	// StateDepth is the deepest nesting of DW_CFA_remember_state.
	StateDepth int
}

// DefaultLimits are the limits applied when none is given.
func DefaultLimits() Limits {
	return Limits{SectionSize: 64 << 20, Rows: 4 << 20, Program: 64 << 10, StateDepth: 64}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.SectionSize <= 0 {
		l.SectionSize = d.SectionSize
	}
	if l.Rows <= 0 {
		l.Rows = d.Rows
	}
	if l.Program <= 0 {
		l.Program = d.Program
	}
	if l.StateDepth <= 0 {
		l.StateDepth = d.StateDepth
	}
	return l
}

// Option changes how FromELF builds a table.
type Option func(*options)

type options struct {
	limits     Limits
	debugFrame bool
	// goDebugFrame reads the .debug_frame of Go binaries too (for tests: it
	// is a producer other than GCC and its section is compressed).
	goDebugFrame bool
}

// WithLimits sets the limits (zero fields keep their defaults).
func WithLimits(l Limits) Option { return func(o *options) { o.limits = l } }

// WithoutDebugFrame builds the table from .eh_frame alone.
func WithoutDebugFrame() Option { return func(o *options) { o.debugFrame = false } }

// Reason says why a row's rule could not be kept: the row becomes CFANone
// (frame-pointer fallback).
type Reason uint8

// The reasons counted in Stats.Unsupported.
const (
	// ReasonCFARegister: the CFA is computed from a register other than RSP or
	// RBP (such as R10 in functions that realign their stack).
	ReasonCFARegister Reason = iota
	// ReasonCFAExpression: the CFA is a DWARF expression other than the PLT one.
	ReasonCFAExpression
	// ReasonCFAOffset: the CFA offset does not fit an int32.
	ReasonCFAOffset
	// ReasonRBPRegister: the caller's RBP is kept in another register.
	ReasonRBPRegister
	// ReasonRBPExpression: the caller's RBP is given by an expression or as a
	// value (DW_CFA_expression, val_offset, val_expression).
	ReasonRBPExpression
	// ReasonRBPOffset: the RBP slot offset does not fit an int16 (or is 0).
	ReasonRBPOffset
	// ReasonReturnAddress: the return address is not at CFA-8.
	ReasonReturnAddress
	// NumReasons is the number of reasons (the length of Stats.Unsupported).
	NumReasons
)

var reasonNames = [NumReasons]string{
	"cfa_register", "cfa_expression", "cfa_offset", "rbp_register",
	"rbp_expression", "rbp_offset", "return_address",
}

// String is the reason's name, fit for a metric label.
func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Stats count what building a table met, for the loader's metrics.
type Stats struct {
	// FDEs is the number of FDEs whose rows are in the table, per section.
	FDEsEHFrame, FDEsDebugFrame int
	// FDEsSkipped counts FDEs left out: empty, outside the executable segments
	// (such as the address-0 FDEs of functions the linker discarded), covered
	// by another FDE, or with an augmentation or pointer encoding this package
	// does not know.
	FDEsSkipped int
	// Rows is len(Table.Rows); RowsByType counts them by CFAType.
	Rows       int
	RowsByType [CFAEnd + 1]int
	// Unsupported counts the evaluated rows (before neighbours with the same
	// rule are merged) whose rule became CFANone, by reason.
	Unsupported [NumReasons]int
	// DebugFrameSkipped: the file has a .debug_frame that was not read (a Go
	// binary, or WithoutDebugFrame).
	DebugFrameSkipped bool
}

// FromFile opens the ELF file at path and builds its table, reading no
// section larger than limit bytes (0: the default, 64 MiB).
func FromFile(path string, limit int64, opts ...Option) (*Table, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("unwind table of %s: %w", path, err)
	}
	defer f.Close()
	opts = append(opts[:len(opts):len(opts)], func(o *options) { o.limits.SectionSize = limit })
	t, err := FromELF(f, opts...)
	if err != nil {
		return nil, fmt.Errorf("unwind table of %s: %w", path, err)
	}
	return t, nil
}

// FromELF builds the unwind table of f from its .eh_frame and, where present,
// .debug_frame (whose FDEs only fill ranges that .eh_frame lacks). A file
// without either section gives an empty table. Go binaries' .debug_frame is
// not read: it describes the CFA but not where Go saves RBP, and Go code keeps
// frame pointers, which the agent already follows.
func FromELF(f *elf.File, opts ...Option) (*Table, error) {
	o := options{debugFrame: true}
	for _, opt := range opts {
		opt(&o)
	}
	o.limits = o.limits.withDefaults()
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 || f.Data != elf.ELFDATA2LSB {
		return nil, fmt.Errorf("%v %v: %w", f.Class, f.Machine, ErrUnsupportedArch)
	}
	b := builder{limits: o.limits, exec: execRanges(f)}
	if s := f.Section(".eh_frame"); s != nil && s.Type != elf.SHT_NOBITS {
		if err := b.addSection(s, true); err != nil {
			return nil, err
		}
	}
	if s := f.Section(".debug_frame"); s != nil && s.Type != elf.SHT_NOBITS {
		if !o.debugFrame || (isGo(f) && !o.goDebugFrame) {
			b.stats.DebugFrameSkipped = true
		} else if err := b.addSection(s, false); err != nil {
			return nil, err
		}
	}
	return b.build()
}

// isGo says whether f was linked by the Go linker.
func isGo(f *elf.File) bool {
	return f.Section(".go.buildinfo") != nil || f.Section(".note.go.buildid") != nil || f.Section(".gopclntab") != nil
}

// execRanges are the address ranges of f's executable segments (nil when f has
// no program headers: every FDE is then kept).
func execRanges(f *elf.File) [][2]uint64 {
	var r [][2]uint64
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && p.Memsz > 0 {
			r = append(r, [2]uint64{p.Vaddr, p.Vaddr + p.Memsz})
		}
	}
	sort.Slice(r, func(i, j int) bool { return r[i][0] < r[j][0] })
	return r
}

// readSection reads s whole, failing past limit bytes.
func readSection(s *elf.Section, limit int64) ([]byte, error) {
	if s.Size > uint64(limit) {
		return nil, fmt.Errorf("%s: %d bytes, more than %d: %w", s.Name, s.Size, limit, ErrTooLarge)
	}
	if s.Flags&elf.SHF_COMPRESSED == 0 {
		b := make([]byte, s.Size)
		if len(b) == 0 {
			return b, nil
		}
		if _, err := s.ReadAt(b, 0); err != nil {
			return nil, fmt.Errorf("read %s: %w: %w", s.Name, ErrMalformed, err)
		}
		return b, nil
	}
	b, err := io.ReadAll(io.LimitReader(s.Open(), limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w: %w", s.Name, ErrMalformed, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: uncompressed, more than %d bytes: %w", s.Name, limit, ErrTooLarge)
	}
	return b, nil
}
