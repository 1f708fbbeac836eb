package unwind

import (
	"debug/elf"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestCFAProgramsBecomeRows(t *testing.T) {
	tests := []struct {
		name        string
		prog        []byte
		want        []Row
		unsupported map[Reason]int
	}{
		{
			name: "a function with a frame pointer gives one row per change and returns to the CIE's rule",
			prog: []byte{opAdvance | 1, opDefCFAOff, 16, opOffset | regRBP, 2, opAdvance | 4, opDefCFAReg, regRBP,
				opAdvance | 0x10, opDefCFA, regRSP, 8, opRestore | regRBP},
			want: []Row{{PC: 0x1000, CFA: CFARSP, CFAOffset: 8}, {PC: 0x1001, CFA: CFARSP, CFAOffset: 16, RBPOffset: -16},
				{PC: 0x1005, CFA: CFARBP, CFAOffset: 16, RBPOffset: -16}, {PC: 0x1015, CFA: CFARSP, CFAOffset: 8}},
		},
		{
			name: "restore_state brings back the CFA and RBP rules that remember_state kept",
			prog: []byte{opAdvance | 1, opDefCFAOff, 16, opOffset | regRBP, 2, opRemember, opAdvance | 1, opDefCFAOff, 8,
				opRestore | regRBP, opAdvance | 1, opRestoreSt},
			want: []Row{{PC: 0x1000, CFA: CFARSP, CFAOffset: 8}, {PC: 0x1001, CFA: CFARSP, CFAOffset: 16, RBPOffset: -16},
				{PC: 0x1002, CFA: CFARSP, CFAOffset: 8}, {PC: 0x1003, CFA: CFARSP, CFAOffset: 16, RBPOffset: -16}},
		},
		{
			name: "the PLT expression is a CFAPLT row",
			prog: pltExpr,
			want: []Row{{PC: 0x1000, CFA: CFAPLT, CFAOffset: 8}},
		},
		{
			name:        "another CFA expression falls back to frame pointers and is counted",
			prog:        cat([]byte{opAdvance | 2}, []byte{opDefCFAExpr, 3, 0x77, 0x08, 0x06}),
			want:        []Row{{PC: 0x1000, CFA: CFARSP, CFAOffset: 8}, {PC: 0x1002, CFA: CFANone}},
			unsupported: map[Reason]int{ReasonCFAExpression: 1},
		},
		{
			name: "a CFA from R10 falls back to frame pointers for as long as it lasts",
			prog: []byte{opAdvance | 1, opDefCFA, 10, 0, opAdvance | 1, opDefCFA, regRSP, 8},
			want: []Row{{PC: 0x1000, CFA: CFARSP, CFAOffset: 8}, {PC: 0x1001, CFA: CFANone},
				{PC: 0x1002, CFA: CFARSP, CFAOffset: 8}},
			unsupported: map[Reason]int{ReasonCFARegister: 1},
		},
		{
			name:        "RBP kept in another register falls back to frame pointers",
			prog:        []byte{opRegister, regRBP, 3},
			want:        []Row{{PC: 0x1000, CFA: CFANone}},
			unsupported: map[Reason]int{ReasonRBPRegister: 1},
		},
		{
			name:        "RBP given by an expression falls back to frame pointers",
			prog:        []byte{opExpression, regRBP, 2, 0x77, 0x10},
			want:        []Row{{PC: 0x1000, CFA: CFANone}},
			unsupported: map[Reason]int{ReasonRBPExpression: 1},
		},
		{
			name:        "RBP given as a value falls back to frame pointers",
			prog:        []byte{opValOffset, regRBP, 2},
			want:        []Row{{PC: 0x1000, CFA: CFANone}},
			unsupported: map[Reason]int{ReasonRBPExpression: 1},
		},
		{
			name:        "a return address elsewhere than CFA-8 falls back to frame pointers",
			prog:        []byte{opOffset | regRA, 2},
			want:        []Row{{PC: 0x1000, CFA: CFANone}},
			unsupported: map[Reason]int{ReasonReturnAddress: 1},
		},
		{
			name: "an undefined return address ends the stack",
			prog: []byte{opAdvance | 4, opUndefined, regRA},
			want: []Row{{PC: 0x1000, CFA: CFARSP, CFAOffset: 8}, {PC: 0x1004, CFA: CFAEnd}},
		},
		{
			name: "same_value says RBP is no longer saved",
			prog: []byte{opOffset | regRBP, 2, opAdvance | 1, opSameValue, regRBP},
			want: []Row{{PC: 0x1000, CFA: CFARSP, CFAOffset: 8, RBPOffset: -16}, {PC: 0x1001, CFA: CFARSP, CFAOffset: 8}},
		},
		{
			name: "advance_loc1, 2 and 4 move on by their operand",
			prog: []byte{0x02, 0x10, opDefCFAOff, 16, 0x03, 0x80, 0x00, opDefCFAOff, 24, 0x04, 0x01, 0, 0, 0, opDefCFAOff, 32},
			want: []Row{{PC: 0x1000, CFA: CFARSP, CFAOffset: 8}, {PC: 0x1010, CFA: CFARSP, CFAOffset: 16},
				{PC: 0x1090, CFA: CFARSP, CFAOffset: 24}, {PC: 0x1091, CFA: CFARSP, CFAOffset: 32}},
		},
		{
			name: "the signed forms scale by the data alignment factor",
			prog: []byte{opDefCFASF, regRSP, 0x7e, opAdvance | 1, opDefCFAOfSF, 0x7d, opAdvance | 1, opNegOffset, regRBP, 3},
			want: []Row{{PC: 0x1000, CFA: CFARSP, CFAOffset: 16}, {PC: 0x1001, CFA: CFARSP, CFAOffset: 24},
				{PC: 0x1002, CFA: CFARSP, CFAOffset: 24, RBPOffset: 24}},
		},
		{
			name: "GNU_args_size and nops change no rule",
			prog: []byte{opArgsSize, 16, 0, opAdvance | 3, opArgsSize, 0},
			want: []Row{{PC: 0x1000, CFA: CFARSP, CFAOffset: 8}},
		},
		{
			name: "rows past the FDE's end are left out",
			prog: []byte{opAdvance | 8, opDefCFAOff, 16, 0x03, 0x00, 0x10, opDefCFAOff, 24},
			want: []Row{{PC: 0x1000, CFA: CFARSP, CFAOffset: 8}, {PC: 0x1008, CFA: CFARSP, CFAOffset: 16}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eh := newCFI(true, 0x8000, x86Initial).fde(0x1000, 0x100, tt.prog)
			table, err := fromBytes(makeELF(elf.EM_X86_64, eh.section()))
			if err != nil {
				t.Fatal(err)
			}
			checkTable(t, table)
			if !slices.Equal(table.Rows, tt.want) {
				t.Errorf("rows\n%+v\nwant\n%+v", table.Rows, tt.want)
			}
			if table.End != 0x1100 {
				t.Errorf("End 0x%x, want 0x1100", table.End)
			}
			for r := range NumReasons {
				if table.Stats.Unsupported[r] != tt.unsupported[r] {
					t.Errorf("%d rows unsupported for %v, want %d", table.Stats.Unsupported[r], r, tt.unsupported[r])
				}
			}
			if table.Stats.FDEsEHFrame != 1 {
				t.Errorf("%d FDEs counted, want 1", table.Stats.FDEsEHFrame)
			}
		})
	}
}

func TestFDEsAreJoinedIntoOneTable(t *testing.T) {
	push := []byte{opAdvance | 1, opDefCFAOff, 16}
	tests := []struct {
		name     string
		sections []testSection
		want     []Row
		end      uint64
		stats    func(s Stats) bool
	}{
		{
			name:     "a gap between FDEs is a CFANone row, End is the last FDE's end",
			sections: []testSection{newCFI(true, 0x8000, x86Initial).fde(0x1020, 0x10, nil).fde(0x1000, 0x10, push).section()},
			want: []Row{{PC: 0x1000, CFA: CFARSP, CFAOffset: 8}, {PC: 0x1001, CFA: CFARSP, CFAOffset: 16},
				{PC: 0x1010, CFA: CFANone}, {PC: 0x1020, CFA: CFARSP, CFAOffset: 8}},
			end: 0x1030,
		},
		{
			name:     "neighbour FDEs with one rule give one row",
			sections: []testSection{newCFI(true, 0x8000, x86Initial).fde(0x1000, 0x10, nil).fde(0x1010, 0x10, nil).section()},
			want:     []Row{{PC: 0x1000, CFA: CFARSP, CFAOffset: 8}},
			end:      0x1020,
		},
		{
			name: ".debug_frame fills only the ranges .eh_frame lacks",
			sections: []testSection{
				newCFI(true, 0x8000, x86Initial).fde(0x1010, 0x10, []byte{opDefCFAOff, 16}).section(),
				newCFI(false, 0, x86Initial).fde(0x1000, 0x40, []byte{opDefCFAOff, 24}).section(),
			},
			want: []Row{{PC: 0x1000, CFA: CFARSP, CFAOffset: 24}, {PC: 0x1010, CFA: CFARSP, CFAOffset: 16},
				{PC: 0x1020, CFA: CFARSP, CFAOffset: 24}},
			end:   0x1040,
			stats: func(s Stats) bool { return s.FDEsEHFrame == 1 && s.FDEsDebugFrame == 1 },
		},
		{
			name: "a .debug_frame FDE that .eh_frame covers is skipped",
			sections: []testSection{
				newCFI(true, 0x8000, x86Initial).fde(0x1000, 0x10, []byte{opDefCFAOff, 16}).section(),
				newCFI(false, 0, x86Initial).fde(0x1000, 0x10, []byte{opDefCFAOff, 24}).section(),
			},
			want:  []Row{{PC: 0x1000, CFA: CFARSP, CFAOffset: 16}},
			end:   0x1010,
			stats: func(s Stats) bool { return s.FDEsEHFrame == 1 && s.FDEsDebugFrame == 0 && s.FDEsSkipped == 1 },
		},
		{
			name:     "an empty FDE is skipped",
			sections: []testSection{newCFI(true, 0x8000, x86Initial).fde(0x1000, 0, push).section()},
			stats:    func(s Stats) bool { return s.FDEsSkipped == 1 && s.FDEsEHFrame == 0 },
		},
		{
			name:     "a file without call frame information has an empty table",
			sections: []testSection{{name: ".text", addr: 0x1000, data: []byte{0xc3}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			table, err := fromBytes(makeELF(elf.EM_X86_64, tt.sections...))
			if err != nil {
				t.Fatal(err)
			}
			checkTable(t, table)
			if !slices.Equal(table.Rows, tt.want) {
				t.Errorf("rows\n%+v\nwant\n%+v", table.Rows, tt.want)
			}
			if table.End != tt.end {
				t.Errorf("End 0x%x, want 0x%x", table.End, tt.end)
			}
			if tt.stats != nil && !tt.stats(table.Stats) {
				t.Errorf("stats %+v", table.Stats)
			}
		})
	}
}

func TestMalformedCallFrameInformationIsAnError(t *testing.T) {
	deep := make([]byte, 65)
	for i := range deep {
		deep[i] = opRemember
	}
	fdeAt := func(prog []byte) []testSection {
		return []testSection{newCFI(true, 0x8000, x86Initial).fde(0x1000, 0x100, prog).section()}
	}
	tests := []struct {
		name     string
		sections []testSection
		limits   Limits
		want     error
		where    string
	}{
		{"an unknown CFA instruction is an error naming the offset", fdeAt([]byte{0x20}), Limits{}, ErrMalformed, ".eh_frame at offset 0x"},
		{"an instruction cut short is an error", fdeAt([]byte{opDefCFA, regRSP, 0x80, 0x80, 0x80, 0x80, 0x80}) /* no padding after 7 bytes */, Limits{}, ErrMalformed, ".eh_frame at offset 0x"},
		{"restore_state without remember_state is an error", fdeAt([]byte{opRestoreSt}), Limits{}, ErrMalformed, ".eh_frame at offset 0x"},
		{"remember_state nested too deep is an error", fdeAt(deep), Limits{}, ErrTooLarge, ".eh_frame at offset 0x"},
		{"a CFA program past the limit is an error", fdeAt(make([]byte, 100)), Limits{Program: 64}, ErrTooLarge, ".eh_frame at offset 0x"},
		{"a section past the limit is an error", fdeAt(nil), Limits{SectionSize: 16}, ErrTooLarge, ".eh_frame"},
		{"an entry longer than its section is an error", []testSection{{name: ".eh_frame", data: []byte{0xff, 0, 0, 0, 0, 0, 0, 0}}}, Limits{}, ErrMalformed, ".eh_frame at offset 0x0"},
		{"a length cut short is an error", []testSection{{name: ".debug_frame", data: []byte{0x10, 0}}}, Limits{}, ErrMalformed, ".debug_frame at offset 0x0"},
		{"a CIE pointer before the section is an error", []testSection{{name: ".eh_frame", data: []byte{8, 0, 0, 0, 0xff, 0, 0, 0, 0, 0, 0, 0}}}, Limits{}, ErrMalformed, ".eh_frame at offset 0x0"},
		{"a CIE pointer at an FDE is an error", []testSection{{name: ".debug_frame", data: []byte{8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}}}, Limits{}, ErrMalformed, ".debug_frame at offset 0x0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			table, err := fromBytes(makeELF(elf.EM_X86_64, tt.sections...), WithLimits(tt.limits))
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v (table %+v), want %v", err, table, tt.want)
			}
			if !strings.Contains(err.Error(), tt.where) {
				t.Errorf("error %q does not say %q", err, tt.where)
			}
		})
	}
}

func TestOtherArchitecturesAreRefused(t *testing.T) {
	eh := newCFI(true, 0x8000, x86Initial).fde(0x1000, 0x100, nil).section()
	for _, m := range []elf.Machine{elf.EM_AARCH64, elf.EM_RISCV, elf.EM_PPC64} {
		t.Run("an "+m.String()+" file is refused with ErrUnsupportedArch", func(t *testing.T) {
			_, err := fromBytes(makeELF(m, eh))
			if !errors.Is(err, ErrUnsupportedArch) {
				t.Fatalf("got %v, want ErrUnsupportedArch", err)
			}
		})
	}
	t.Run("a 32-bit x86 file is refused with ErrUnsupportedArch", func(t *testing.T) {
		b32 := make([]byte, 52)
		copy(b32, []byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS32), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)})
		b32[16], b32[18], b32[20], b32[40] = byte(elf.ET_EXEC), byte(elf.EM_386), 1, 52
		_, err := fromBytes(b32)
		if !errors.Is(err, ErrUnsupportedArch) {
			t.Fatalf("got %v, want ErrUnsupportedArch", err)
		}
	})
}
