package symbolize

import (
	"cmp"
	"debug/elf"
	"debug/gosym"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"unsafe"
)

// maxGoFuncs bounds the functions taken from a .gopclntab (debug/gosym allocates one
// Func per entry); the largest real binaries have a few hundred thousand.
const maxGoFuncs = 4 << 20

// namedSym is a function's address range [start, end) at link-time addresses, while
// the symbols are read.
type namedSym struct {
	start, end uint64
	name       string
}

// elfSym is a function's address range [start, end) at link-time addresses, as a table
// keeps it: its name is symTable.names[nameOff:nameOff+nameLen], so a table holds one
// string for all its names instead of one per symbol.
type elfSym struct {
	start, end       uint64
	nameOff, nameLen uint32
}

// Size estimates of what a table holds beyond its byte slices, per element.
const (
	// goFuncBytes: a gosym.Func and its gosym.Sym, plus the name's entry in the
	// LineTable's name cache (debug/gosym keeps every name there as well).
	goFuncBytes = int64(unsafe.Sizeof(gosym.Func{})+unsafe.Sizeof(gosym.Sym{})) + 48
	// goLookupCacheBytes: the strings debug/gosym and inlineTable cache as they answer
	// lookups (file names, inlined function names), at most maxInlineNames of the latter.
	goLookupCacheBytes = 512 << 10
	// tableBytes: a symTable and its sources and error strings.
	tableBytes = int64(unsafe.Sizeof(symTable{})) + 256
)

// symFrame is one function at an address: several for an address in inlined code.
type symFrame struct {
	fn, file string
	line     int
}

// symTable names the link-time addresses of one file. It is immutable once built except
// for the caches inside gotab and inl, which gomu guards.
type symTable struct {
	// syms are ELF function symbols sorted by start, one per start address; for a Go
	// binary only those outside the .gopclntab's range. names holds their names.
	syms  []elfSym
	names string
	// gotab is the Go line table, nil for a non-Go file; it covers [goLo, goHi). inl
	// reads its inline trees, nil when they could not be found.
	gomu       sync.Mutex
	gotab      goLines
	inl        *inlineTable
	goLo, goHi uint64
	// sources says where the symbols came from, e.g. ".gopclntab+.symtab".
	sources string
	// err says why the file has no symbols at all; nil when it has some.
	err error
	// size estimates the heap the table holds, set once it is built.
	size int64
	// maps are the file mappings gotab and inl read (unmapped when t is garbage).
	maps [][]byte
}

// dropPages lets the kernel take back the pages of t's mappings that lookups touched:
// a Batch does it when it is closed, so that they do not add up in the agent's RSS
// from interval to interval (a lookup touches them again from the page cache).
func (t *symTable) dropPages() {
	for _, m := range t.maps {
		dropPages(m)
	}
}

func (t *symTable) symName(i int) string {
	s := t.syms[i]
	return t.names[s.nameOff : s.nameOff+s.nameLen]
}

// sizeBytes estimates the heap t holds: what was counted when it was built, which
// includes an allowance for the caches its Go lookups fill.
func (t *symTable) sizeBytes() int64 { return t.size }

// goSize estimates what the Go part of t holds on the heap: the pclntab bytes and
// go:func.* bytes when they were read rather than mapped (pclnHeap, gofuncHeap),
// debug/gosym's per-function structures and names for a pclntab older than Go 1.18,
// and the inline table.
func (t *symTable) goSize(pclnHeap, gofuncHeap int64) int64 {
	n := pclnHeap + goLookupCacheBytes
	if g, ok := t.gotab.(gosymLines); ok {
		for i := range g.t.Funcs {
			n += goFuncBytes + int64(len(g.t.Funcs[i].Name))
		}
	}
	if t.inl != nil {
		n += int64(unsafe.Sizeof(inlineTable{})) + gofuncHeap
	}
	return n
}

// within reports whether b's bytes are part of outer's backing array.
func within(b, outer []byte) bool {
	if len(b) == 0 || len(outer) == 0 {
		return len(b) == 0
	}
	bp, op := uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(unsafe.Pointer(unsafe.SliceData(outer)))
	return bp >= op && bp < op+uintptr(cap(outer))
}

// compactSymbols stores syms in t with their names in one string.
func (t *symTable) compactSymbols(syms []namedSym) {
	total := 0
	for _, s := range syms {
		total += len(s.name)
	}
	var b strings.Builder
	b.Grow(total)
	t.syms = make([]elfSym, len(syms))
	for i, s := range syms {
		t.syms[i] = elfSym{start: s.start, end: s.end, nameOff: uint32(b.Len()), nameLen: uint32(len(s.name))}
		b.WriteString(s.name)
	}
	t.names = b.String()
}

// lookup appends to out the functions at link-time address pc, innermost first: one
// for an ELF symbol, one per inlined function and one for the function they were
// inlined into for Go code, none when pc is in no known function. file and line are
// known for Go code only.
func (t *symTable) lookup(pc uint64, out []symFrame) []symFrame {
	if t.gotab != nil && pc >= t.goLo && pc < t.goHi {
		if res := t.goLookup(pc, out); len(res) > len(out) {
			return res
		}
	}
	i := sort.Search(len(t.syms), func(i int) bool { return t.syms[i].start > pc }) - 1
	if i >= 0 && pc < t.syms[i].end {
		return append(out, symFrame{fn: t.symName(i)})
	}
	return out
}

func (t *symTable) goLookup(pc uint64, out []symFrame) (res []symFrame) {
	t.gomu.Lock()         // gotab and inl cache strings in maps as they read
	defer t.gomu.Unlock() // which also keeps t, and so its mapped bytes, alive until here
	// The pclntab may be mapped from a file that a truncation makes fault (SIGBUS).
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	n := len(out)
	defer func() {
		if recover() != nil {
			res = out[:n]
		}
	}()
	name, fEntry, file, line, ok := t.gotab.pcToLine(pc)
	if !ok {
		return out
	}
	if t.inl != nil {
		if entry, calls := t.inl.calls(pc); len(calls) > 0 && entry == fEntry {
			for _, c := range calls {
				out = append(out, symFrame{fn: c.name, file: file, line: max(line, 0)})
				// The next frame out is positioned at the call site.
				_, _, file, line, _ = t.gotab.pcToLine(c.parentPC)
			}
		}
	}
	return append(out, symFrame{fn: name, file: file, line: max(line, 0)})
}

// symbols reads the file's symbol tables. Problems end in t.err, never a panic (the
// caller recovers) and never a nil table.
func (o *elfObject) symbols() *symTable {
	t := &symTable{}
	var errs []error

	// The full symbol table, when present, is needed both for its functions and to find
	// the Go text start and an unsectioned pclntab.
	// symtab64 reads a 64-bit one in place: then symtab holds only the symbols
	// goSymbols looks up by name.
	var symtab []elf.Symbol
	var lean *symtab64
	if s := o.f.SectionByType(elf.SHT_SYMTAB); s != nil {
		if err := o.checkSymbolSection(s); err != nil {
			errs = append(errs, err)
		} else if l, ok := o.symtab64Of(s); ok {
			lean = l
			defer l.release()
			symtab = l.named()
		} else if syms, err := o.f.Symbols(); err != nil {
			errs = append(errs, fmt.Errorf("%w: .symtab: %w", errMalformed, err))
		} else {
			symtab = syms
		}
	}

	var sources []string
	if err := o.goSymbols(t, symtab); err != nil {
		errs = append(errs, err)
	} else if t.gotab != nil {
		sources = append(sources, ".gopclntab")
	}

	var syms []namedSym
	if lean != nil {
		syms = o.funcSymbols(lean.outside(t.goLo, t.goHi), t.goLo, t.goHi)
	} else {
		syms = o.funcSymbols(symtab, t.goLo, t.goHi)
	}
	source := ".symtab"
	if len(syms) == 0 {
		source = ".dynsym"
		if s := o.f.SectionByType(elf.SHT_DYNSYM); s != nil {
			if err := o.checkSymbolSection(s); err != nil {
				errs = append(errs, err)
			} else if dyn, err := o.f.DynamicSymbols(); err != nil {
				errs = append(errs, fmt.Errorf("%w: .dynsym: %w", errMalformed, err))
			} else {
				syms = o.funcSymbols(dyn, t.goLo, t.goHi)
			}
		}
	}
	if t.gotab != nil {
		// Go functions come from the pclntab, with lines; keep the others (cgo, assembly
		// outside the Go text).
		syms = slices.DeleteFunc(syms, func(s namedSym) bool { return s.start < t.goHi && s.end > t.goLo })
	}
	if len(syms) > 0 {
		t.compactSymbols(syms)
		sources = append(sources, source)
	}
	t.sources = strings.Join(sources, "+")
	t.size += tableBytes + int64(cap(t.syms))*int64(unsafe.Sizeof(elfSym{})) + int64(len(t.names))
	if t.gotab == nil && len(t.syms) == 0 {
		if len(errs) == 0 {
			errs = append(errs, errors.New("no function symbols (.symtab, .dynsym and .gopclntab absent or empty)"))
		}
		t.err = errors.Join(errs...)
	}
	return t
}

// funcCand is a function symbol while funcSymbols sorts them.
type funcCand struct {
	namedSym
	bind   elf.SymBind
	sized  bool
	secEnd uint64
}

// funcCandidate tells whether s names a function funcSymbols keeps, and how.
func (o *elfObject) funcCandidate(s elf.Symbol) (funcCand, bool) {
	if s.Value == 0 || s.Name == "" || s.Section == elf.SHN_UNDEF || s.Section >= elf.SHN_LORESERVE {
		return funcCand{}, false
	}
	var sec *elf.Section
	if int(s.Section) < len(o.f.Sections) {
		sec = o.f.Sections[s.Section]
	}
	switch elf.ST_TYPE(s.Info) {
	case elf.STT_FUNC, elf.STT_GNU_IFUNC:
	case elf.STT_NOTYPE:
		// Assembly labels are often untyped; keep those in code, not local labels or
		// ARM/RISC-V mapping symbols ($x, $d).
		if sec == nil || sec.Flags&elf.SHF_EXECINSTR == 0 || strings.HasPrefix(s.Name, "$") || strings.HasPrefix(s.Name, ".L") {
			return funcCand{}, false
		}
	default:
		return funcCand{}, false
	}
	c := funcCand{namedSym: namedSym{start: s.Value, name: s.Name}, bind: elf.ST_BIND(s.Info), sized: s.Size > 0}
	if c.sized {
		c.end = s.Value + s.Size
		if c.end < c.start { // overflow in a corrupt table
			return funcCand{}, false
		}
	}
	if sec != nil && sec.Addr <= s.Value && s.Value-sec.Addr < sec.Size {
		c.secEnd = sec.Addr + sec.Size
	}
	return c, true
}

// funcSymbols keeps the function symbols of raw, sorted, one per address, each with an
// end: start+size, or for a size-0 symbol the next symbol or the end of its section.
// Of the symbols starting in [goLo, goHi), the Go text whose functions the pclntab
// names, only the lowest is kept (it may end the symbol before it): the caller drops
// them all, and sorting a Go binary's hundred thousand names cost more than reading
// its pclntab.
func (o *elfObject) funcSymbols(raw []elf.Symbol, goLo, goHi uint64) []namedSym {
	type cand = funcCand
	cands := make([]cand, 0, len(raw)/2)
	var goFirst cand
	haveGo := false
	for _, s := range raw {
		c, ok := o.funcCandidate(s)
		if !ok {
			continue
		}
		if c.start >= goLo && c.start < goHi {
			if !haveGo || c.start < goFirst.start {
				goFirst, haveGo = c, true
			}
			continue
		}
		cands = append(cands, c)
	}
	if haveGo {
		cands = append(cands, goFirst)
	}
	bindRank := func(b elf.SymBind) int {
		switch b {
		case elf.STB_GLOBAL:
			return 0
		case elf.STB_WEAK:
			return 1
		case elf.STB_LOCAL:
			return 2
		}
		return 3
	}
	underscores := func(s string) int { return len(s) - len(strings.TrimLeft(s, "_")) }
	// Aliases share an address: the first after sorting is the one named, preferring
	// global over weak over local (__getpid over getpid is glibc's choice, not ours),
	// then a sized symbol, then the fewest leading underscores, then the shortest name.
	slices.SortFunc(cands, func(a, b cand) int {
		if a.start != b.start { // cmp.Or evaluates every key: aliases are rare
			return cmp.Compare(a.start, b.start)
		}
		return cmp.Or(
			cmp.Compare(bindRank(a.bind), bindRank(b.bind)),
			cmpBool(b.sized, a.sized),
			cmp.Compare(underscores(a.name), underscores(b.name)),
			cmp.Compare(len(a.name), len(b.name)),
			strings.Compare(a.name, b.name),
		)
	})
	cands = slices.CompactFunc(cands, func(a, b cand) bool { return a.start == b.start })
	out := make([]namedSym, len(cands))
	for i, c := range cands {
		if !c.sized {
			c.end = c.start + 1 // only the symbol's own address, unless bounded below
			next := uint64(0)
			if i+1 < len(cands) {
				next = cands[i+1].start
			}
			switch {
			case next != 0 && (c.secEnd == 0 || next < c.secEnd):
				c.end = next
			case c.secEnd != 0:
				c.end = c.secEnd
			}
		}
		out[i] = c.namedSym
	}
	return out
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// goSymbols loads the Go line table into t when the file has one. A file without one is
// not an error.
func (o *elfObject) goSymbols(t *symTable, symtab []elf.Symbol) error {
	data, pclnAddr, err := o.pclntab(symtab)
	if err != nil || data == nil {
		return err
	}
	if len(data) < 16 {
		return fmt.Errorf("%w: .gopclntab of %d bytes", errMalformed, len(data))
	}
	// The pclntab's function offsets count from runtime.text, which differs from the
	// start of .text when an external linker put C code first: take it from the symbol
	// table, else from the moduledata, else assume .text.
	textStart := uint64(0)
	if s := o.f.Section(".text"); s != nil {
		textStart = s.Addr
	}
	gofunc, mdText := o.goFunc(data, pclnAddr, symtab)
	if mdText != 0 {
		textStart = mdText
	}
	for _, s := range symtab {
		if s.Name == "runtime.text" && s.Value != 0 {
			textStart = s.Value
			break
		}
	}
	var drop func()
	if o.heapBytes(data) == 0 {
		drop = func() {
			for _, m := range o.maps {
				dropPages(m)
			}
		}
	}
	tab, err := newGoLines(data, textStart, drop)
	if err != nil {
		return fmt.Errorf("%w: .gopclntab: %w", errMalformed, err)
	}
	n := tab.funcs()
	if n == 0 || n > maxGoFuncs {
		return fmt.Errorf("%w: .gopclntab: %d functions (unsupported version or corrupt)", errMalformed, n)
	}
	lo, hi := tab.bounds()
	if hi <= lo {
		return fmt.Errorf("%w: .gopclntab: functions span [%#x, %#x)", errMalformed, lo, hi)
	}
	t.gotab, t.goLo, t.goHi = tab, lo, hi
	if gofunc != nil {
		// Without inline trees names stay right (the outer function) but lines in
		// inlined code are the callee's; that is the best debug/gosym alone can do.
		t.inl, _ = newInlineTable(data, textStart, gofunc)
	}
	gofuncHeap := int64(0)
	if !within(gofunc, data) {
		gofuncHeap = o.heapBytes(gofunc)
	}
	t.size += t.goSize(o.heapBytes(data), gofuncHeap)
	return nil
}

// pclntab returns the Go pc-line table's bytes and link address, nil when the file is
// not a Go binary.
func (o *elfObject) pclntab(symtab []elf.Symbol) ([]byte, uint64, error) {
	for _, name := range []string{".gopclntab", ".data.rel.ro.gopclntab"} {
		if s := o.f.Section(name); s != nil && s.Type != elf.SHT_NOBITS {
			if err := o.checkSection(s, uint64(o.size)); err != nil {
				return nil, 0, err
			}
			data, err := o.sectionRange(s, 0, s.Size)
			return data, s.Addr, err
		}
	}
	// An externally linked Go binary can have the table inside another section, between
	// these two symbols.
	var start, end uint64
	for _, s := range symtab {
		switch s.Name {
		case "runtime.pclntab":
			start = s.Value
		case "runtime.epclntab":
			end = s.Value
		}
	}
	if start == 0 || end <= start || end-start > uint64(o.size) {
		return nil, 0, nil
	}
	for _, s := range o.f.Sections {
		if s.Type == elf.SHT_NOBITS || start < s.Addr || end-s.Addr > s.Size {
			continue
		}
		if err := o.checkSection(s, uint64(o.size)); err != nil {
			return nil, 0, err
		}
		data, err := o.sectionRange(s, start-s.Addr, end-start)
		if err != nil {
			return nil, 0, fmt.Errorf("runtime.pclntab: %w", err)
		}
		return data, start, nil
	}
	return nil, 0, nil
}
