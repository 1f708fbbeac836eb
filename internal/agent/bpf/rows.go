package bpf

import (
	"slices"

	"github.com/kprof/kprof/internal/agent/unwind"
)

// TableRows returns the rows to write for table t with Sampler.WriteRows (and to
// give as a Mapping's RowLen): its rows and, when it has an End, a CFANone row
// there, since the program looks a row up by the last one at or below an address
// and has no other way to know where the table ends.
func TableRows(t *unwind.Table) []unwind.Row {
	rows := t.Rows
	if n := len(rows); n > 0 && t.End > rows[n-1].PC {
		rows = append(slices.Clip(rows), unwind.Row{PC: t.End, CFA: unwind.CFANone})
	}
	return rows
}
