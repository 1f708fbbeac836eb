package unwind

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// readelfRow is one row of `readelf --debug-dump=frames-interp`.
type readelfRow struct {
	loc          uint64
	cfa, rbp, ra string
}

// readelfFDE is an FDE as readelf prints it, with its rows.
type readelfFDE struct {
	section    string
	off        string
	begin, end uint64
	rows       []readelfRow
}

// readelfFrames runs readelf on path and parses every FDE's rows.
func readelfFrames(t *testing.T, path string) []readelfFDE {
	t.Helper()
	out, err := exec.Command("readelf", "--debug-dump=no-follow-links", "--debug-dump=frames-interp", path).Output()
	if err != nil {
		t.Fatalf("readelf %s: %v", path, err)
	}
	var fdes []readelfFDE
	var cur *readelfFDE
	var cols []string
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "Contents of the "):
			section = strings.Fields(line)[3]
			cur = nil
		case len(fields) >= 6 && fields[3] == "FDE":
			pc := strings.TrimPrefix(fields[5], "pc=")
			b, e, ok := strings.Cut(pc, "..")
			if !ok {
				t.Fatalf("readelf %s: FDE line %q", path, line)
			}
			fdes = append(fdes, readelfFDE{section: section, off: fields[0], begin: hex(t, b), end: hex(t, e)})
			cur = &fdes[len(fdes)-1]
		case len(fields) >= 4 && fields[3] == "CIE", len(fields) >= 4 && fields[3] == "ZERO":
			cur = nil
		case len(fields) > 0 && fields[0] == "LOC":
			cols = fields
		case cur != nil && len(fields) == len(cols) && len(fields[0]) == 16:
			r := readelfRow{loc: hex(t, fields[0]), cfa: fields[1], rbp: "u"}
			for i, c := range cols {
				switch c {
				case "rbp":
					r.rbp = fields[i]
				case "ra":
					r.ra = fields[i]
				}
			}
			cur.rows = append(cur.rows, r)
		}
	}
	return fdes
}

func hex(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		t.Fatalf("readelf printed %q: %v", s, err)
	}
	return v
}

// wantRow is the rule readelf's row gives, in the table's terms. plt: an
// expression CFA, for which CFAPLT (with offset 8) or CFANone are right.
func wantRow(r readelfRow) (row Row, plt bool, err error) {
	if r.ra == "u" {
		return Row{CFA: CFAEnd}, false, nil
	}
	if r.ra != "c-8" && r.ra != "" {
		return Row{}, false, nil
	}
	switch {
	case r.cfa == "exp":
		plt = true
	case strings.HasPrefix(r.cfa, "rsp+"), strings.HasPrefix(r.cfa, "rbp+"):
		off, err := strconv.ParseInt(r.cfa[4:], 10, 32)
		if err != nil {
			return Row{}, false, fmt.Errorf("CFA %q: %w", r.cfa, err)
		}
		row = Row{CFA: CFARSP, CFAOffset: int32(off)}
		if r.cfa[:3] == "rbp" {
			row.CFA = CFARBP
		}
	default:
		return Row{}, false, nil // another register
	}
	switch {
	case r.rbp == "u" || r.rbp == "s":
	case strings.HasPrefix(r.rbp, "c-") || strings.HasPrefix(r.rbp, "c+"):
		off, err := strconv.ParseInt(r.rbp[1:], 10, 16)
		if err != nil {
			return Row{}, false, fmt.Errorf("rbp %q: %w", r.rbp, err)
		}
		row.RBPOffset = int16(off)
	default:
		return Row{}, false, nil // in a register, an expression, a value
	}
	if plt {
		return Row{}, true, nil
	}
	return row, false, nil
}

// TestTheTableAgreesWithReadelf compares, at every row readelf prints for a
// file, the table's rule with readelf's.
func TestTheTableAgreesWithReadelf(t *testing.T) {
	needTool(t, "readelf")
	files := []struct {
		name string
		path func(t *testing.T) string
		opts []Option
	}{
		{"libc's rules are readelf's", func(t *testing.T) string { needFile(t, libcPath); return libcPath }, nil},
		{"python3's rules are readelf's", func(t *testing.T) string { needFile(t, pythonPath); return pythonPath }, nil},
		{"a C program's rules without frame pointers are readelf's", func(t *testing.T) string {
			return cProgram(t, "omit-fp", "-O2", "-fomit-frame-pointer")
		}, nil},
		{"a C program's rules with frame pointers are readelf's", func(t *testing.T) string {
			return cProgram(t, "keep-fp", "-O2", "-fno-omit-frame-pointer")
		}, nil},
		{"a C program's rules from .debug_frame are readelf's", func(t *testing.T) string {
			return cProgram(t, "debug-frame", "-O2", "-g", "-fno-asynchronous-unwind-tables", "-fno-unwind-tables")
		}, nil},
		{"a C program's rules with both sections are readelf's", func(t *testing.T) string {
			return cProgram(t, "both-frames", "-O2", "-g", "-DBOTH_SECTIONS", "-fno-toplevel-reorder")
		}, nil},
		{"a Go binary's rules from its .debug_frame are readelf's", func(t *testing.T) string { return goProgram(t) },
			[]Option{func(o *options) { o.goDebugFrame = true }}},
	}
	for _, file := range files {
		t.Run(file.name, func(t *testing.T) {
			path := file.path(t)
			table, err := FromFile(path, 0, file.opts...)
			if err != nil {
				t.Fatal(err)
			}
			f, err := elf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			exec := execRanges(f)
			var plts [][2]uint64
			for _, s := range f.Sections {
				if strings.HasPrefix(s.Name, ".plt") {
					plts = append(plts, [2]uint64{s.Addr, s.Addr + s.Size})
				}
			}
			f.Close()
			fdes := readelfFrames(t, path)
			var eh [][2]uint64
			for _, fde := range fdes {
				if fde.section == ".eh_frame" {
					eh = append(eh, [2]uint64{fde.begin, fde.end})
				}
			}
			checked, mismatches, plt := 0, 0, 0
			for _, fde := range fdes {
				if !inRanges(exec, fde.begin, fde.end) {
					continue // a discarded function's FDE (at address 0)
				}
				for i, r := range fde.rows {
					if r.loc < fde.begin || r.loc >= fde.end {
						continue
					}
					if i+1 < len(fde.rows) && fde.rows[i+1].loc == r.loc {
						continue // readelf prints a row per advance, even of 0
					}
					if fde.section == ".debug_frame" && inAny(eh, r.loc) {
						continue // .eh_frame's rule is kept there
					}
					checked++
					want, isPLT, err := wantRow(r)
					if err != nil {
						t.Fatalf("%s %s FDE %s at 0x%x: %v", path, fde.section, fde.off, r.loc, err)
					}
					got := lookup(table, r.loc)
					got.PC = 0
					ok := got == want
					if isPLT {
						// readelf does not print the expression: in a PLT
						// section it is the PLT one (or another, CFANone),
						// elsewhere it is not.
						plt++
						ok = got == Row{} || (got == Row{CFA: CFAPLT, CFAOffset: 8} && inAny(plts, r.loc))
					}
					if !ok {
						mismatches++
						if mismatches <= 20 {
							t.Errorf("%s %s FDE %s at 0x%x: readelf says CFA %s rbp %s ra %s, the table has %+v, want %+v",
								path, fde.section, fde.off, r.loc, r.cfa, r.rbp, r.ra, got, want)
						}
					}
				}
			}
			if checked == 0 {
				t.Fatalf("%s: readelf printed no row to check", path)
			}
			if mismatches > 0 {
				t.Errorf("%s: %d of %d rows differ from readelf's", path, mismatches, checked)
			}
			t.Logf("%s: %d rows of readelf checked (%d with an expression CFA), table of %d rows, stats %+v", path, checked, plt, len(table.Rows), table.Stats)
		})
	}
}

func inRanges(r [][2]uint64, begin, end uint64) bool {
	for _, x := range r {
		if x[0] <= begin && end <= x[1] {
			return true
		}
	}
	return len(r) == 0
}

func inAny(r [][2]uint64, pc uint64) bool {
	for _, x := range r {
		if x[0] <= pc && pc < x[1] {
			return true
		}
	}
	return false
}
