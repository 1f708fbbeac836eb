package symbolize

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// ErrKernelRestricted is returned (wrapped) when /proc/kallsyms shows every address as
// zero: kernel.kptr_restrict hides them from this process (it needs CAP_SYSLOG, and
// kptr_restrict=2 hides them from everyone).
var ErrKernelRestricted = errors.New("kernel symbol addresses hidden by kptr_restrict")

const (
	// maxKallsymsBytes bounds the read of /proc/kallsyms (about 15 MiB on a distribution
	// kernel with modules).
	maxKallsymsBytes = 256 << 20
	// maxLastKernelSymbol bounds how far past the last symbol an address is still given
	// its name: kallsyms has no sizes, and nothing follows the last symbol to end it.
	maxLastKernelSymbol = 64 << 10
)

// kernelTable names kernel text addresses. Entries with an empty name start a region
// that is not text (data of the kernel or of a module), so a text symbol ends there.
type kernelTable struct {
	starts []uint64
	names  []string
}

// lookup returns the text symbol containing addr, "" when none does.
func (k *kernelTable) lookup(addr uint64) string {
	i := sort.Search(len(k.starts), func(i int) bool { return k.starts[i] > addr }) - 1
	if i < 0 || (i == len(k.starts)-1 && addr-k.starts[i] >= maxLastKernelSymbol) {
		return ""
	}
	return k.names[i]
}

func (k *kernelTable) len() int {
	n := 0
	for _, name := range k.names {
		if name != "" {
			n++
		}
	}
	return n
}

// parseKallsyms reads /proc/kallsyms lines: "ffffffff81000000 T _stext" with an optional
// "\t[module]". At most maxKallsymsBytes are read. Text symbols (t, T, w, W) are kept
// by name; other symbols only end the text before them.
func parseKallsyms(r io.Reader) (*kernelTable, error) {
	type sym struct {
		addr uint64
		name string
		text bool
	}
	var syms []sym
	lr := &io.LimitedReader{R: r, N: maxKallsymsBytes + 1}
	sc := bufio.NewScanner(lr)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	lines, zeros := 0, 0
	for sc.Scan() {
		// The first three fields, without a string per line (a kernel has 100 000+).
		f0, rest := nextField(sc.Bytes())
		f1, rest := nextField(rest)
		f2, _ := nextField(rest)
		if len(f2) == 0 || len(f1) != 1 {
			continue
		}
		addr, err := strconv.ParseUint(string(f0), 16, 64)
		if err != nil {
			continue
		}
		lines++
		if addr == 0 {
			zeros++
			continue
		}
		switch f1[0] {
		case 't', 'T', 'w', 'W':
			syms = append(syms, sym{addr: addr, name: string(f2), text: true})
		case 'a', 'A', 'U', 'u':
			// Absolute values (per-CPU offsets) and undefined symbols are not places in memory.
		default:
			syms = append(syms, sym{addr: addr})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read kallsyms: %w", err)
	}
	if lr.N <= 0 {
		return nil, fmt.Errorf("read kallsyms: larger than %d bytes", maxKallsymsBytes)
	}
	if lines == 0 {
		return nil, errors.New("read kallsyms: no symbols")
	}
	if zeros == lines {
		return nil, fmt.Errorf("read kallsyms: %d symbols, all at address 0: %w", lines, ErrKernelRestricted)
	}
	underscores := func(s string) int { return len(s) - len(strings.TrimLeft(s, "_")) }
	// At one address a text symbol wins over a non-text one; among aliases the fewest
	// leading underscores, then the shortest name.
	slices.SortFunc(syms, func(a, b sym) int {
		if a.addr != b.addr { // cmp.Or evaluates every key: aliases are rare
			return cmp.Compare(a.addr, b.addr)
		}
		return cmp.Or(
			cmpBool(b.text, a.text),
			cmp.Compare(underscores(a.name), underscores(b.name)),
			cmp.Compare(len(a.name), len(b.name)),
			strings.Compare(a.name, b.name),
		)
	})
	syms = slices.CompactFunc(syms, func(a, b sym) bool { return a.addr == b.addr })
	k := &kernelTable{starts: make([]uint64, 0, len(syms)), names: make([]string, 0, len(syms))}
	for _, s := range syms {
		// Runs of non-text symbols need only their first entry.
		if !s.text && len(k.names) > 0 && k.names[len(k.names)-1] == "" {
			continue
		}
		k.starts = append(k.starts, s.addr)
		k.names = append(k.names, s.name)
	}
	return k, nil
}

// nextField returns the first field of b separated by ASCII white space, as
// strings.Fields splits it, and what follows it.
func nextField(b []byte) (field, rest []byte) {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r' }
	i := 0
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	j := i
	for j < len(b) && !isSpace(b[j]) {
		j++
	}
	return b[i:j], b[j:]
}
