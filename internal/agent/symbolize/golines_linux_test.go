//go:build linux

package symbolize

import (
	"debug/elf"
	"debug/gosym"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
)

// goEntries lists the entry of every function of a Go line table.
func goEntries(g goLines) []uint64 {
	switch g := g.(type) {
	case *pclnLines:
		e := make([]uint64, g.nfunc)
		for i := range e {
			e[i] = g.pc(i)
		}
		return e
	case gosymLines:
		e := make([]uint64, len(g.t.Funcs))
		for i, f := range g.t.Funcs {
			e[i] = f.Entry
		}
		return e
	}
	return nil
}

// gosymOf builds debug/gosym's table of the Go binary at path as goSymbols did before
// pclnLines, with the same pclntab bytes and text start.
func gosymOf(t *testing.T, path string, tab *symTable) *gosym.Table {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	o, _, err := openObject(f, st.Size(), fileID{}, DefaultMaxFileBytes)
	if err != nil {
		t.Fatal(err)
	}
	var symtab []elf.Symbol
	if s := o.f.SectionByType(elf.SHT_SYMTAB); s != nil {
		if symtab, err = o.f.Symbols(); err != nil {
			t.Fatal(err)
		}
	}
	data, _, err := o.pclntab(symtab)
	if err != nil || data == nil {
		t.Fatalf("pclntab of %s: %v", path, err)
	}
	p, ok := tab.gotab.(*pclnLines)
	if !ok {
		t.Fatalf("%s: line table %T, want *pclnLines (a Go 1.18+ binary)", path, tab.gotab)
	}
	g, err := gosym.NewTable(nil, gosym.NewLineTable(data, p.textStart))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// The in-place reader of a Go 1.18+ pclntab gives debug/gosym's answers: the same
// function, entry, file and line at the entry, the middle and the last byte of every
// function, at 20 000 random pcs of the text, and nothing outside it.
func TestPclnLinesAnswerAsGosymDoes(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bins := toolBinaries(t)
	bins["this test"] = exe
	bins["the go target"] = targetBinary(t, "go")
	if _, err := os.Stat("/usr/bin/etcd"); err == nil {
		bins["etcd"] = "/usr/bin/etcd" // Go 1.19 here: the 1.18 magic
	}
	for name, path := range bins {
		t.Run(name, func(t *testing.T) {
			tab := loadTable(t, path)
			g := gosymOf(t, path, tab)
			lo, hi := tab.gotab.bounds()
			if n := tab.gotab.funcs(); n != len(g.Funcs) || lo != g.Funcs[0].Entry || hi != g.Funcs[n-1].End {
				t.Fatalf("%d functions over [%#x, %#x), gosym has %d over [%#x, %#x)", n, lo, hi,
					len(g.Funcs), g.Funcs[0].Entry, g.Funcs[len(g.Funcs)-1].End)
			}
			check := func(pc uint64) {
				t.Helper()
				fn, entry, file, line, ok := tab.gotab.pcToLine(pc)
				wfile, wline, wf := g.PCToLine(pc)
				if ok != (wf != nil) {
					t.Fatalf("pc %#x: found %v, gosym %v", pc, ok, wf != nil)
				}
				if wf == nil {
					return
				}
				if fn != wf.Name || entry != wf.Entry || file != wfile || line != wline {
					t.Fatalf("pc %#x: %s (entry %#x) %s:%d, gosym %s (entry %#x) %s:%d", pc, fn, entry, file, line,
						wf.Name, wf.Entry, wfile, wline)
				}
			}
			for _, f := range g.Funcs {
				check(f.Entry)
				check(f.Entry + (f.End-f.Entry)/2)
				check(f.End - 1)
			}
			r := rand.New(rand.NewPCG(1, 2))
			for range 20000 {
				check(lo + r.Uint64N(hi-lo))
			}
			for _, pc := range []uint64{0, lo - 1, hi, hi + 1, ^uint64(0)} {
				check(pc)
			}
			t.Logf("%d functions agree", len(g.Funcs))
		})
	}
}

// Leaving the Go text's symbols out before sorting, and reading the .symtab in place,
// keep exactly the symbols (and ends) that sorting all of elf.File.Symbols and then
// dropping those overlapping the Go text kept; a C binary keeps all its functions.
func TestFuncSymbolsOfAGoBinaryAreThoseOutsideItsGoText(t *testing.T) {
	bins := toolBinaries(t)
	bins["the go target"] = targetBinary(t, "go")
	bins["the go-pie target"] = targetBinary(t, "go-pie")
	bins["the c-pie target"] = targetBinary(t, "c-pie") // no Go text: every function symbol
	bins["the c-nopie target"] = targetBinary(t, "c-nopie")
	for name, path := range bins {
		t.Run(name, func(t *testing.T) {
			tab := loadTable(t, path)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil {
				t.Fatal(err)
			}
			o, _, err := openObject(f, st.Size(), fileID{}, DefaultMaxFileBytes)
			if err != nil {
				t.Fatal(err)
			}
			symtab, err := o.f.Symbols()
			if err != nil {
				t.Fatal(err)
			}
			outside := func(s namedSym) bool { return s.start < tab.goHi && s.end > tab.goLo }
			want := slices.DeleteFunc(o.funcSymbols(symtab, 0, 0), outside)
			got := slices.DeleteFunc(o.funcSymbols(symtab, tab.goLo, tab.goHi), outside)
			if !slices.Equal(got, want) {
				t.Fatalf("%d symbols, want %d: %v, want %v", len(got), len(want), got, want)
			}
			lean, ok := o.symtab64Of(o.f.SectionByType(elf.SHT_SYMTAB))
			if !ok {
				t.Fatal("the .symtab was not read in place")
			}
			defer lean.release()
			got = slices.DeleteFunc(o.funcSymbols(lean.outside(tab.goLo, tab.goHi), tab.goLo, tab.goHi), outside)
			if !slices.Equal(got, want) {
				t.Fatalf("read in place: %d symbols, want %d: %v, want %v", len(got), len(want), got, want)
			}
			var named []elf.Symbol
			for _, s := range symtab {
				if slices.Contains(goSymbolNames, s.Name) {
					named = append(named, s)
				}
			}
			if got := lean.named(); !slices.Equal(got, named) || (len(named) == 0) != (tab.gotab == nil) {
				t.Fatalf("read in place, the symbols goSymbols looks up are %v, want %v", got, named)
			}
			if len(tab.syms) != len(want) {
				t.Fatalf("the table keeps %d symbols, want %d", len(tab.syms), len(want))
			}
			for i := range want {
				if s := tab.syms[i]; s.start != want[i].start || s.end != want[i].end || tab.symName(i) != want[i].name {
					t.Fatalf("the table's symbol %d is %s [%#x, %#x), want %+v", i, tab.symName(i), s.start, s.end, want[i])
				}
			}
			t.Logf("%d symbols outside the Go text of %d", len(want), len(symtab))
		})
	}
}
