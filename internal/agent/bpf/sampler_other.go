//go:build !linux

package bpf

import (
	"errors"
	"runtime"

	"github.com/kprof/kprof/internal/agent/unwind"
)

// ErrUnsupported is returned by Open on systems other than Linux.
var ErrUnsupported = errors.New("the eBPF sampler needs Linux (perf_event BPF programs); this is " + runtime.GOOS)

// Sampler is not available on this system.
type Sampler struct{}

// Open fills in cfg's defaults, validates it and returns ErrUnsupported.
func Open(cfg Config) (*Sampler, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return nil, ErrUnsupported
}

// Config returns the zero Config.
func (s *Sampler) Config() Config { return Config{} }

// Drain returns ErrUnsupported.
func (s *Sampler) Drain() ([]RawSample, Stats, error) { return nil, Stats{}, ErrUnsupported }

// Close does nothing.
func (s *Sampler) Close() error { return nil }

// Unwinder reports false.
func (s *Sampler) Unwinder() bool { return false }

// RowCapacity returns 0.
func (s *Sampler) RowCapacity() uint32 { return 0 }

// WriteRows returns ErrUnsupported.
func (s *Sampler) WriteRows(off uint32, rows []unwind.Row) error { return ErrUnsupported }

// SetProcess returns ErrUnsupported.
func (s *Sampler) SetProcess(tgid uint32, maps []Mapping) error { return ErrUnsupported }

// DeleteProcess returns ErrUnsupported.
func (s *Sampler) DeleteProcess(tgid uint32) error { return ErrUnsupported }

// TakeUnknown returns nothing.
func (s *Sampler) TakeUnknown() ([]uint32, error) { return nil, nil }
