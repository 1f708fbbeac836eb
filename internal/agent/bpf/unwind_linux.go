//go:build linux

package bpf

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/kprof/kprof/internal/agent/unwind"
)

// The unwinder's tables: the agent's loader writes the rows of each executable it
// loads at offsets it allocates in one array (WriteRows), then the executable
// mappings of a process with their row ranges (SetProcess). The program reports
// the processes it samples without mappings, or at an address in none of them, in
// a bounded set the loader reads with TakeUnknown.

// Unwinder reports whether the table-driven unwinder is loaded; when false (the
// frame-pointer-only program), RowCapacity is 0 and WriteRows and SetProcess
// return ErrNoUnwinder.
func (s *Sampler) Unwinder() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.objs != nil && s.program == unwinderProgram
}

// RowCapacity is the number of rows the row array holds (Config.MaxUnwindRows),
// 0 without the unwinder.
func (s *Sampler) RowCapacity() uint32 {
	if !s.Unwinder() {
		return 0
	}
	return s.cfg.MaxUnwindRows
}

// unwinderMaps returns the objects, or why the unwinder's maps cannot be used.
func (s *Sampler) unwinderMaps() (*samplerObjects, error) {
	switch {
	case s.objs == nil:
		return nil, ErrClosed
	case s.program != unwinderProgram:
		return nil, ErrNoUnwinder
	}
	return s.objs, nil
}

// WriteRows writes rows at rows[off, off+len(rows)) of the row array, in one batch
// where the kernel has batch updates (5.6+). A process's rows are in use by the
// program once SetProcess names them: write them before, and to a range no
// process uses.
func (s *Sampler) WriteRows(off uint32, rows []unwind.Row) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	objs, err := s.unwinderMaps()
	if err != nil {
		return err
	}
	if uint64(off)+uint64(len(rows)) > uint64(s.cfg.MaxUnwindRows) {
		return fmt.Errorf("writing unwind rows [%d, %d): past the %d rows of MaxUnwindRows", off, uint64(off)+uint64(len(rows)), s.cfg.MaxUnwindRows)
	}
	if len(rows) == 0 {
		return nil
	}
	keys := make([]uint32, len(rows))
	values := make([]samplerUnwindRow, len(rows))
	for i, r := range rows {
		keys[i] = off + uint32(i)
		values[i] = samplerUnwindRow{Pc: r.PC, CfaOff: r.CFAOffset, RbpOff: r.RBPOffset, CfaType: uint8(r.CFA)}
	}
	_, err = objs.UnwindRows.BatchUpdate(keys, values, nil)
	if errors.Is(err, ebpf.ErrNotSupported) {
		for i := range keys {
			if err = objs.UnwindRows.Update(keys[i], values[i], ebpf.UpdateAny); err != nil {
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("writing unwind rows [%d, %d): %w", off, off+uint32(len(rows)), err)
	}
	return nil
}

// SetProcess sets (or replaces, atomically for the program) the executable
// mappings of process tgid: sorted by Start, not overlapping, at most
// MaxMappings, their rows within RowCapacity.
func (s *Sampler) SetProcess(tgid uint32, maps []Mapping) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	objs, err := s.unwinderMaps()
	if err != nil {
		return err
	}
	if err := checkMappings(maps, s.cfg.MaxUnwindRows); err != nil {
		return fmt.Errorf("setting the mappings of process %d: %w", tgid, err)
	}
	var p samplerProcess
	p.Len = uint32(len(maps))
	for i, m := range maps {
		p.Maps[i] = samplerMapping{Start: m.Start, End: m.End, Bias: m.Bias, RowOff: m.RowOff, RowLen: m.RowLen}
	}
	if err := objs.Processes.Update(tgid, &p, ebpf.UpdateAny); err != nil {
		if errors.Is(err, unix.E2BIG) {
			return fmt.Errorf("setting the mappings of process %d: MaxProcesses (%d) processes already have mappings: %w", tgid, s.cfg.MaxProcesses, err)
		}
		return fmt.Errorf("setting the mappings of process %d: %w", tgid, err)
	}
	return nil
}

// checkMappings checks what SetProcess requires of maps.
func checkMappings(maps []Mapping, rowCapacity uint32) error {
	if len(maps) > MaxMappings {
		return fmt.Errorf("%d mappings, more than MaxMappings (%d)", len(maps), MaxMappings)
	}
	for i, m := range maps {
		switch {
		case m.Start >= m.End:
			return fmt.Errorf("mapping %d [%#x, %#x) is empty", i, m.Start, m.End)
		case i > 0 && m.Start < maps[i-1].End:
			return fmt.Errorf("mapping %d [%#x, %#x) starts before the end of mapping %d [%#x, %#x): not sorted or overlapping",
				i, m.Start, m.End, i-1, maps[i-1].Start, maps[i-1].End)
		case uint64(m.RowOff)+uint64(m.RowLen) > uint64(rowCapacity):
			return fmt.Errorf("mapping %d: rows [%d, %d) past the %d rows of MaxUnwindRows",
				i, m.RowOff, uint64(m.RowOff)+uint64(m.RowLen), rowCapacity)
		}
	}
	return nil
}

// DeleteProcess removes the mappings of process tgid (an exited process); a
// process without mappings is no error.
func (s *Sampler) DeleteProcess(tgid uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	objs, err := s.unwinderMaps()
	if err != nil {
		return err
	}
	if err := objs.Processes.Delete(tgid); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("deleting the mappings of process %d: %w", tgid, err)
	}
	return nil
}

// TakeUnknown returns the processes sampled since the previous call that have no
// mappings, or whose sampled code is in none of their mappings (such as a library
// loaded after SetProcess), and empties that set. Without the unwinder it
// returns nothing.
func (s *Sampler) TakeUnknown() ([]uint32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	objs, err := s.unwinderMaps()
	if errors.Is(err, ErrNoUnwinder) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	tgids, _, err := drainHash[uint32, uint32](objs.Unknown, 1024)
	if err != nil {
		return tgids, fmt.Errorf("taking the unknown processes: %w", err)
	}
	return tgids, nil
}
