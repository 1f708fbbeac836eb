//go:build !linux

package bpf

import (
	"errors"
	"runtime"
)

// ErrUnsupported is returned by Open on systems other than Linux.
var ErrUnsupported = errors.New("the eBPF sampler needs Linux (perf_event BPF programs); this is " + runtime.GOOS)

// Sampler is not available on this system.
type Sampler struct{}

// Open validates cfg and returns ErrUnsupported.
func Open(cfg Config) (*Sampler, error) {
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
