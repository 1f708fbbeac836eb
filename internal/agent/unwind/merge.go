package unwind

import (
	"cmp"
	"debug/elf"
	"fmt"
	"slices"
	"sort"
)

// builder collects the FDEs of a file's sections and turns them into a table.
type builder struct {
	limits Limits
	exec   [][2]uint64
	stats  Stats
	ev     evaluator
	eh     []fde // FDEs of .eh_frame
	debug  []fde // FDEs of .debug_frame
	rows   []Row
	// piece is the range of the FDE being evaluated that goes in the table.
	pieceBegin, pieceEnd uint64
}

func (b *builder) addSection(s *elf.Section, eh bool) error {
	sec, err := loadSection(s, eh, b.limits.SectionSize)
	if err != nil {
		return err
	}
	b.ev.limits = b.limits
	b.ev.stats = &b.stats
	if eh {
		b.eh, err = sec.fdes(b.eh, &b.ev, &b.stats.FDEsSkipped)
	} else {
		b.debug, err = sec.fdes(b.debug, &b.ev, &b.stats.FDEsSkipped)
	}
	return err
}

// inExec says whether [begin, end) is inside one executable segment.
func (b *builder) inExec(begin, end uint64) bool {
	if b.exec == nil {
		return true
	}
	i := sort.Search(len(b.exec), func(i int) bool { return b.exec[i][1] > begin })
	return i < len(b.exec) && b.exec[i][0] <= begin && end <= b.exec[i][1]
}

// piece is the part of an FDE's range that goes in the table.
type piece struct {
	begin, end uint64
	f          *fde
}

// pieces sorts fdes and returns their ranges less the overlaps, less the
// ranges of cover (sorted, disjoint); FDEs left with nothing are counted as
// skipped.
func (b *builder) pieces(fdes []fde, cover []piece) []piece {
	slices.SortFunc(fdes, func(x, y fde) int { return cmp.Compare(x.begin, y.begin) })
	out := make([]piece, 0, len(fdes))
	var covered uint64 // the end of the last piece out
	for i := range fdes {
		f := &fdes[i]
		if f.begin >= f.end || !b.inExec(f.begin, f.end) {
			b.stats.FDEsSkipped++
			continue
		}
		begin, end := max(f.begin, covered), f.end
		n := len(out)
		j := sort.Search(len(cover), func(j int) bool { return cover[j].end > begin })
		for begin < end {
			if j == len(cover) || cover[j].begin >= end {
				out = append(out, piece{begin, end, f})
				break
			}
			if cover[j].begin > begin {
				out = append(out, piece{begin, cover[j].begin, f})
			}
			begin = max(begin, cover[j].end)
			j++
		}
		if len(out) == n {
			b.stats.FDEsSkipped++
			continue
		}
		covered = max(covered, out[len(out)-1].end)
		if fdes[i].sec.eh {
			b.stats.FDEsEHFrame++
		} else {
			b.stats.FDEsDebugFrame++
		}
	}
	return out
}

func (b *builder) build() (*Table, error) {
	eh := b.pieces(b.eh, nil)
	all := eh
	if len(b.debug) > 0 {
		all = append(all, b.pieces(b.debug, eh)...)
		slices.SortFunc(all, func(x, y piece) int { return cmp.Compare(x.begin, y.begin) })
	}
	b.rows = make([]Row, 0, min(8*len(all)+16, b.limits.Rows)) // libc and python3 have 6 to 8 rows per FDE
	b.ev.out = b
	t := &Table{}
	var last *fde
	var lastEnd uint64
	for i := range all {
		p := &all[i]
		if i > 0 && p.begin > lastEnd {
			if err := b.add(Row{PC: lastEnd, CFA: CFANone}); err != nil {
				return nil, err
			}
		}
		b.pieceBegin, b.pieceEnd = p.begin, p.end
		f := p.f
		st := f.cie.initial
		if err := b.ev.run(f.sec, f.cie, &st, f.sec.data[f.prog:f.progEnd], int(f.prog), f); err != nil {
			return nil, fmt.Errorf("%s FDE at offset 0x%x: %w", f.sec.name, f.off, err)
		}
		last, lastEnd = f, p.end
	}
	if last != nil {
		t.End = lastEnd
	}
	t.Rows = b.rows
	t.Stats = b.stats
	t.Stats.Rows = len(t.Rows)
	for _, r := range t.Rows {
		if int(r.CFA) < len(t.Stats.RowsByType) {
			t.Stats.RowsByType[r.CFA]++
		}
	}
	return t, nil
}

// emit adds the row of [begin, end) of the FDE being evaluated, clipped to
// its piece.
func (b *builder) emit(begin, end uint64, st *state) error {
	begin, end = max(begin, b.pieceBegin), min(end, b.pieceEnd)
	if begin >= end {
		return nil
	}
	return b.add(b.ev.row(begin, st))
}

// add appends r unless it has the rule of the row before.
func (b *builder) add(r Row) error {
	n := len(b.rows)
	if n > 0 && b.rows[n-1].PC == r.PC {
		b.rows = b.rows[:n-1]
		n--
	}
	if n > 0 && sameRule(b.rows[n-1], r) {
		return nil
	}
	if n >= b.limits.Rows {
		return fmt.Errorf("more than %d rows: %w", b.limits.Rows, ErrTooLarge)
	}
	b.rows = append(b.rows, r)
	return nil
}

func sameRule(a, b Row) bool {
	return a.CFA == b.CFA && a.CFAOffset == b.CFAOffset && a.RBPOffset == b.RBPOffset
}
