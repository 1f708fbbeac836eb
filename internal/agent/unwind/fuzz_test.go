package unwind

import (
	"debug/elf"
	"errors"
	"os"
	"strings"
	"testing"
)

// FuzzFromELF builds tables from an x86-64 ELF file whose .eh_frame and
// .debug_frame are the fuzzer's: every input gives a table that keeps the
// invariants or an error naming a section, never a panic.
func FuzzFromELF(f *testing.F) {
	f.Add(newCFI(true, 0x8000, x86Initial).fde(0x1000, 0x100, []byte{opAdvance | 1, opDefCFAOff, 16, opOffset | regRBP, 2, opRemember, opAdvance | 1, opRestoreSt}).section().data,
		newCFI(false, 0, x86Initial).fde(0x1000, 0x200, pltExpr).section().data)
	for _, path := range []string{libcPath, pythonPath} {
		if _, err := os.Stat(path); err != nil {
			continue
		}
		eh := sectionOf(f, path, ".eh_frame").data
		f.Add(eh[:min(len(eh), 512)], []byte(nil))
	}
	if p, err := os.Stat("testdata/frames.c"); err == nil && !p.IsDir() {
		if _, err := os.Stat("/usr/bin/gcc"); err == nil {
			path := cProgram(f, "debug-frame", "-O2", "-g", "-fno-asynchronous-unwind-tables", "-fno-unwind-tables")
			f.Add(sectionOf(f, path, ".eh_frame").data, sectionOf(f, path, ".debug_frame").data)
		}
	}
	f.Fuzz(func(t *testing.T, eh, debug []byte) {
		file := makeELF(elf.EM_X86_64, testSection{name: ".eh_frame", addr: 0x8000, data: eh}, testSection{name: ".debug_frame", data: debug})
		table, err := fromBytes(file, WithLimits(Limits{Rows: 1 << 16}))
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %v is neither ErrMalformed nor ErrTooLarge", err)
			}
			if !strings.Contains(err.Error(), "_frame") {
				t.Fatalf("error %v names no section", err)
			}
			return
		}
		checkTable(t, table)
	})
}
