package bpf

import (
	"slices"
	"testing"

	"github.com/kprof/kprof/internal/agent/unwind"
)

func TestTableRowsEndTheTableWithNoRule(t *testing.T) {
	rows := []unwind.Row{{PC: 0x1000, CFA: unwind.CFARSP, CFAOffset: 8}, {PC: 0x1004, CFA: unwind.CFARSP, CFAOffset: 16}}
	cases := []struct {
		name  string
		table unwind.Table
		want  []unwind.Row
	}{
		{"a table gets a CFANone row at its End", unwind.Table{Rows: rows, End: 0x1010},
			append(slices.Clone(rows), unwind.Row{PC: 0x1010, CFA: unwind.CFANone})},
		{"a table without an End is kept as is", unwind.Table{Rows: rows}, rows},
		{"an empty table stays empty", unwind.Table{End: 0x1010}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := slices.Clone(tc.table.Rows)
			if got := TableRows(&tc.table); !slices.Equal(got, tc.want) {
				t.Errorf("TableRows = %v, want %v", got, tc.want)
			}
			if !slices.Equal(tc.table.Rows, before) {
				t.Errorf("TableRows changed the table's rows to %v", tc.table.Rows)
			}
		})
	}
}
