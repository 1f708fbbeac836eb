package unwind

import (
	"debug/elf"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// goProgram builds a small Go program without cgo, once per test process.
func goProgram(t testing.TB) string {
	needTool(t, "go")
	return compile(t, "go-hello", func(out string) *exec.Cmd {
		dir := filepath.Join(buildDir, "go-hello-src")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		src := "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n"
		if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module hello\n\ngo 1.22\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("go", "build", "-o", out, ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=")
		return cmd
	})
}

// symbol is the address of a function symbol of the ELF file at path.
func symbol(t *testing.T, path, name string) uint64 {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		if s.Name == name && elf.ST_TYPE(s.Info) == elf.STT_FUNC {
			return s.Value
		}
	}
	t.Fatalf("%s has no function %s", path, name)
	return 0
}

func TestRealFiles(t *testing.T) {
	t.Run("a C program built without unwind tables is unwound from its .debug_frame", func(t *testing.T) {
		path := cProgram(t, "debug-frame", "-O2", "-g", "-fno-asynchronous-unwind-tables", "-fno-unwind-tables")
		table, err := FromFile(path, 0)
		if err != nil {
			t.Fatal(err)
		}
		checkTable(t, table)
		if table.Stats.FDEsDebugFrame == 0 {
			t.Fatalf("no FDE of .debug_frame used: %+v", table.Stats)
		}
		ehOnly, err := FromFile(path, 0, WithoutDebugFrame())
		if err != nil {
			t.Fatal(err)
		}
		for _, fn := range []string{"main", "leaf", "rec"} {
			pc := symbol(t, path, fn)
			if got := lookup(ehOnly, pc); got.CFA != CFANone {
				t.Errorf("%s at 0x%x has a rule in .eh_frame (%+v): the program does not test .debug_frame", fn, pc, got)
			}
			if got := lookup(table, pc); got.CFA != CFARSP || got.CFAOffset != 8 {
				t.Errorf("%s at 0x%x: %+v, want CFA = RSP+8 from .debug_frame", fn, pc, got)
			}
		}
	})
	t.Run("a function that realigns its stack falls back to frame pointers, counted by reason", func(t *testing.T) {
		path := cProgram(t, "omit-fp", "-O2", "-fomit-frame-pointer")
		table, err := FromFile(path, 0)
		if err != nil {
			t.Fatal(err)
		}
		u := table.Stats.Unsupported
		if u[ReasonCFARegister] == 0 || u[ReasonCFAExpression] == 0 || u[ReasonRBPExpression] == 0 {
			t.Errorf("unsupported %v: want rows counted for a CFA in R10, a CFA expression and RBP by expression", u)
		}
		pc := symbol(t, path, "realign")
		if r := lookup(table, pc); r.CFA != CFARSP || r.CFAOffset != 8 {
			t.Errorf("realign's entry at 0x%x: %+v, want CFA = RSP+8", pc, r)
		}
		if r := lookup(table, pc+16); r.CFA != CFANone {
			t.Errorf("realign+16 at 0x%x: %+v, want CFANone", pc+16, r)
		}
	})
	t.Run("a compressed .debug_frame gives the rows of the plain one", func(t *testing.T) {
		plain := cProgram(t, "debug-frame", "-O2", "-g", "-fno-asynchronous-unwind-tables", "-fno-unwind-tables")
		compressed := cProgram(t, "debug-frame-gz", "-O2", "-g", "-gz", "-fno-asynchronous-unwind-tables", "-fno-unwind-tables")
		f, err := elf.Open(compressed)
		if err != nil {
			t.Fatal(err)
		}
		s := f.Section(".debug_frame")
		f.Close()
		if s == nil || s.Flags&elf.SHF_COMPRESSED == 0 {
			t.Fatal("gcc -gz wrote no compressed .debug_frame: the program does not test it")
		}
		want, err := FromFile(plain, 0)
		if err != nil {
			t.Fatal(err)
		}
		got, err := FromFile(compressed, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Rows, want.Rows) || got.End != want.End || got.Stats.FDEsDebugFrame == 0 {
			t.Errorf("compressed: %d rows to 0x%x (stats %+v), plain: %d rows to 0x%x", len(got.Rows), got.End, got.Stats, len(want.Rows), want.End)
		}
		if _, err := FromFile(compressed, 64); !errors.Is(err, ErrTooLarge) {
			t.Errorf("a 64-byte limit on the uncompressed section: got %v, want ErrTooLarge", err)
		}
	})
	t.Run("a C program with both sections is unwound from .eh_frame alone", func(t *testing.T) {
		path := cProgram(t, "both-frames", "-O2", "-g", "-DBOTH_SECTIONS", "-fno-toplevel-reorder")
		f, err := elf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		hasDebug := f.Section(".debug_frame") != nil
		f.Close()
		table, err := FromFile(path, 0)
		if err != nil {
			t.Fatal(err)
		}
		checkTable(t, table)
		if !hasDebug {
			t.Fatal("gcc wrote no .debug_frame beside .eh_frame: the program does not test the merge")
		}
		if table.Stats.FDEsDebugFrame != 0 || table.Stats.FDEsSkipped == 0 {
			t.Errorf("stats %+v: want every .debug_frame FDE skipped", table.Stats)
		}
	})
	t.Run("a Go binary gives an empty table, not an error", func(t *testing.T) {
		path := goProgram(t)
		table, err := FromFile(path, 0)
		if err != nil {
			t.Fatal(err)
		}
		checkTable(t, table)
		if len(table.Rows) != 0 || !table.Stats.DebugFrameSkipped {
			t.Errorf("%d rows, stats %+v: want none, and the Go .debug_frame skipped", len(table.Rows), table.Stats)
		}
	})
	t.Run("a Go binary's .debug_frame, when read, gives CFA rules on RSP", func(t *testing.T) {
		path := goProgram(t)
		table, err := FromFile(path, 0, func(o *options) { o.goDebugFrame = true })
		if err != nil {
			t.Fatal(err)
		}
		checkTable(t, table)
		s := table.Stats
		if s.FDEsDebugFrame < 100 || s.RowsByType[CFARSP] < 100 || s.DebugFrameSkipped {
			t.Errorf("stats %+v: want the FDEs of Go's .debug_frame", s)
		}
		if pc := symbol(t, path, "main.main"); lookup(table, pc) != (Row{PC: lookup(table, pc).PC, CFA: CFARSP, CFAOffset: 8}) {
			t.Errorf("main.main at 0x%x: %+v, want CFA = RSP+8 at its entry", pc, lookup(table, pc))
		}
	})
	t.Run("libc and python3 give tables that keep the invariants", func(t *testing.T) {
		for _, path := range []string{libcPath, pythonPath} {
			needFile(t, path)
			table, err := FromFile(path, 0)
			if err != nil {
				t.Fatal(err)
			}
			checkTable(t, table)
			if table.Stats.RowsByType[CFARSP] < 1000 || table.Stats.RowsByType[CFAPLT] == 0 || table.Stats.RowsByType[CFAEnd] == 0 {
				t.Errorf("%s: rows by type %v: want many RSP rows, a PLT and an end", path, table.Stats.RowsByType)
			}
		}
	})
	t.Run("a file that is not ELF is an error", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "not-elf")
		if err := os.WriteFile(path, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := FromFile(path, 0); err == nil || !strings.Contains(err.Error(), path) {
			t.Fatalf("got %v, want an error naming %s", err, path)
		}
	})
	t.Run("libc past a row limit is an error", func(t *testing.T) {
		needFile(t, libcPath)
		if _, err := FromFile(libcPath, 0, WithLimits(Limits{Rows: 100})); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("got %v, want ErrTooLarge", err)
		}
	})
	t.Run("libc past a section size limit is an error", func(t *testing.T) {
		needFile(t, libcPath)
		if _, err := FromFile(libcPath, 4096); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("got %v, want ErrTooLarge", err)
		}
	})
}

func TestDamagedSectionsAreErrorsNotPanics(t *testing.T) {
	needFile(t, libcPath)
	eh := sectionOf(t, libcPath, ".eh_frame")
	rng := rand.New(rand.NewPCG(14, 14))
	t.Run("libc's .eh_frame cut anywhere is a table or an error naming the section", func(t *testing.T) {
		for range 50 {
			cut := rng.IntN(len(eh.data))
			s := eh
			s.data = eh.data[:cut]
			table, err := fromBytes(makeELF(elf.EM_X86_64, s))
			if err != nil {
				if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), ".eh_frame") {
					t.Fatalf("cut at %d: %v: want ErrMalformed naming .eh_frame", cut, err)
				}
				continue
			}
			checkTable(t, table)
		}
	})
	t.Run("libc's .eh_frame with flipped bytes is a table or an error", func(t *testing.T) {
		for range 50 {
			s := eh
			s.data = append([]byte{}, eh.data...)
			for range 1 + rng.IntN(8) {
				s.data[rng.IntN(len(s.data))] = byte(rng.Uint32())
			}
			table, err := fromBytes(makeELF(elf.EM_X86_64, s))
			if err != nil {
				if !strings.Contains(err.Error(), ".eh_frame") {
					t.Fatalf("%v: want an error naming .eh_frame", err)
				}
				continue
			}
			checkTable(t, table)
		}
	})
	t.Run("random bytes as .eh_frame and .debug_frame are errors", func(t *testing.T) {
		errs := 0
		for range 50 {
			a, b := make([]byte, rng.IntN(256)), make([]byte, rng.IntN(256))
			for i := range a {
				a[i] = byte(rng.Uint32())
			}
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			table, err := fromBytes(makeELF(elf.EM_X86_64, testSection{name: ".eh_frame", addr: 0x8000, data: a}, testSection{name: ".debug_frame", data: b}))
			if err != nil {
				errs++
				continue
			}
			checkTable(t, table)
		}
		if errs < 25 {
			t.Errorf("only %d of 50 random sections were errors", errs)
		}
	})
}
