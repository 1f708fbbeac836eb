package loader

import (
	"debug/elf"

	"github.com/kprof/kprof/internal/agent/unwind"
)

// defaultBuild builds a table with the unwind package's builder and its default limits.
func defaultBuild(f *elf.File) (*unwind.Table, error) { return unwind.FromELF(f) }

// kernelRows are the rows of t as the kernel gets them: a row lasts until the next
// one, so a CFANone row at End ends the last FDE (the kernel has no End).
func kernelRows(t *unwind.Table) []unwind.Row {
	rows := t.Rows
	if n := len(rows); n > 0 && t.End > rows[n-1].PC && rows[n-1].CFA != unwind.CFANone {
		rows = append(rows[:n:n], unwind.Row{PC: t.End, CFA: unwind.CFANone})
	}
	return rows
}
