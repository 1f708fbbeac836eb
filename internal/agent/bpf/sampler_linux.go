//go:build linux

package bpf

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"

	"github.com/cilium/ebpf"
)

// Sampler is the loaded BPF program, its maps and one perf event per CPU. Its
// methods are safe for concurrent use.
type Sampler struct {
	cfg Config

	mu      sync.Mutex
	objs    *samplerObjects // nil once closed
	program program         // the program loaded
	events  []*cpuEvent
	gen     uint32 // the generation samples go to
}

// Open fills in cfg's defaults, validates it, loads the BPF program and maps, and
// starts sampling on every CPU of cfg.CPUs. Errors name what is missing: a
// capability, the memlock limit on old kernels, a hardware PMU, or a config field.
func Open(cfg Config) (*Sampler, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	online, err := onlineCPUs()
	if err != nil {
		return nil, err
	}
	if len(cfg.CPUs) == 0 {
		cfg.CPUs = online
	}
	for _, cpu := range cfg.CPUs {
		if !slices.Contains(online, cpu) {
			return nil, fmt.Errorf("bpf sampler config: CPUs: CPU %d is not online (online: %v)", cpu, online)
		}
	}
	if cfg.Frequency != 0 {
		if limit := maxSampleRate(); limit != 0 && cfg.Frequency > limit {
			return nil, fmt.Errorf("bpf sampler config: Frequency %d is above kernel.perf_event_max_sample_rate %d", cfg.Frequency, limit)
		}
	}

	caps, capsErr := effectiveCaps()
	var ml memlock
	if capsErr != nil || caps.canBPF() {
		// Without CAP_BPF the rlimit package's probe cannot tell memcg accounting
		// apart, and loading fails anyway: leave the limit alone then.
		ml = prepareMemlock()
	}

	load := func(p program) (*samplerObjects, error) {
		spec, err := programSpec(p)
		if err != nil {
			return nil, fmt.Errorf("reading the embedded BPF sampler: %w", err)
		}
		if err := configureSpec(spec, &cfg, p); err != nil {
			return nil, err
		}
		objs := new(samplerObjects)
		if err := spec.LoadAndAssign(objs, nil); err != nil {
			return nil, err
		}
		return objs, nil
	}
	objs, prog, err := loadObjects(&cfg, probeHelper, load, cfg.Logger)
	if err != nil {
		return nil, loadError(err, caps, capsErr, ml)
	}
	s := &Sampler{cfg: cfg, objs: objs, program: prog}
	for _, pid := range cfg.ExcludePIDs {
		if err := objs.ExcludedTgids.Update(pid, uint8(1), ebpf.UpdateAny); err != nil {
			_ = s.Close()
			return nil, fmt.Errorf("excluding pid %d: %w", pid, err)
		}
	}
	for _, cpu := range cfg.CPUs {
		ev, err := openCPUEvent(&cfg, cpu, objs.KprofSample, caps, capsErr)
		if err != nil {
			_ = s.Close()
			return nil, err
		}
		s.events = append(s.events, ev)
	}
	return s, nil
}

// configureSpec sizes the maps and sets the load-time constants from cfg. The
// frame-pointer-only program does not use the unwinder's maps: they get one entry.
func configureSpec(spec *ebpf.CollectionSpec, cfg *Config, p program) error {
	var specs samplerSpecs
	if err := spec.Assign(&specs); err != nil {
		return fmt.Errorf("reading the embedded BPF sampler: %w", err)
	}
	specs.UnwindRows.MaxEntries, specs.Processes.MaxEntries, specs.Unknown.MaxEntries = 1, 1, 1
	if p == unwinderProgram {
		specs.UnwindRows.MaxEntries = cfg.MaxUnwindRows
		specs.Processes.MaxEntries = cfg.MaxProcesses
		specs.Unknown.MaxEntries = cfg.MaxUnknown
	}
	specs.Stacks0.MaxEntries = cfg.MaxStacks
	specs.Stacks1.MaxEntries = cfg.MaxStacks
	specs.Counts0.MaxEntries = cfg.MaxEntries
	specs.Counts1.MaxEntries = cfg.MaxEntries
	specs.ExcludedTgids.MaxEntries = uint32(max(1, len(cfg.ExcludePIDs)))
	excludeIdle := uint32(1)
	if cfg.IncludeIdle {
		excludeIdle = 0
	}
	if err := specs.ExcludeIdle.Set(excludeIdle); err != nil {
		return fmt.Errorf("setting exclude_idle: %w", err)
	}
	if cfg.stackHashMask != 0 {
		if err := specs.StackHashMask.Set(cfg.stackHashMask); err != nil {
			return fmt.Errorf("setting stack_hash_mask: %w", err)
		}
	}
	return nil
}

func onlineCPUs() ([]int, error) {
	const path = "/sys/devices/system/cpu/online"
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("listing online CPUs: %w", err)
	}
	cpus, err := parseCPUList(string(b))
	if err != nil {
		return nil, fmt.Errorf("listing online CPUs from %s: %w", path, err)
	}
	return cpus, nil
}

// Config returns the configuration in force, with defaults and CPUs filled in.
func (s *Sampler) Config() Config {
	cfg := s.cfg
	cfg.CPUs = slices.Clone(cfg.CPUs)
	cfg.ExcludePIDs = slices.Clone(cfg.ExcludePIDs)
	return cfg
}

// Drain returns the samples counted since the previous Drain (or Open) and the
// interval's Stats. It flips the generation, so that new samples go to the other set
// of maps, waits until no program still uses the old one, then reads and clears it.
// No sample is lost or counted twice across Drains. On error, the samples read
// before it are returned with it.
func (s *Sampler) Drain() ([]RawSample, Stats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.objs == nil {
		return nil, Stats{}, ErrClosed
	}
	idle := s.gen
	if err := s.objs.ActiveGen.Update(uint32(0), idle^1, ebpf.UpdateAny); err != nil {
		return nil, Stats{}, fmt.Errorf("flipping the sampler generation: %w", err)
	}
	s.gen = idle ^ 1
	// Returns after synchronize_rcu(): every program that read the old generation is done.
	if err := s.objs.Barrier.Update(uint32(0), s.objs.BarrierInner, ebpf.UpdateAny); err != nil {
		// The idle generation is not read now; it becomes active again at the next
		// Drain and its samples are returned one Drain later: delayed, not lost.
		return nil, Stats{}, fmt.Errorf("waiting for running BPF programs: %w", err)
	}
	return s.read(idle)
}

// read reads and clears generation gen, which no program writes to.
func (s *Sampler) read(gen uint32) ([]RawSample, Stats, error) {
	counts, stacks := s.objs.Counts0, s.objs.Stacks0
	if gen == 1 {
		counts, stacks = s.objs.Counts1, s.objs.Stacks1
	}
	stats, statsErr := s.drainStats(gen)
	keys, values, countsErr := drainHash[samplerSampleKey, uint64](counts, 4096)
	// Clear the stack map only now: its keys were in use until the counts were read.
	stackKeys, stackValues, stacksErr := drainHash[uint64, samplerStack](stacks, 1024)
	resolved := make(map[uint64][]uint64, len(stackKeys))
	for i, k := range stackKeys {
		v := &stackValues[i]
		pcs := v.Pcs[:min(int(v.Len), MaxStackDepth)]
		// The kernel's frame-pointer walk (bpf_get_stack) may end a stack with 0.
		if i := slices.Index(pcs, 0); i >= 0 {
			pcs = pcs[:i]
		}
		if len(pcs) > 0 {
			resolved[k] = slices.Clone(pcs)
		}
	}
	samples := make([]RawSample, 0, len(keys))
	for i, k := range keys {
		samples = append(samples, RawSample{
			TGID:   k.Tgid,
			PID:    k.Pid,
			User:   resolved[k.UserStack],
			Kernel: resolved[k.KernelStack],
			Count:  values[i],
		})
	}
	slices.SortFunc(samples, func(a, b RawSample) int {
		return cmp.Or(cmp.Compare(a.TGID, b.TGID), cmp.Compare(a.PID, b.PID), cmp.Compare(b.Count, a.Count))
	})
	if err := errors.Join(statsErr, countsErr, stacksErr); err != nil {
		return samples, stats, fmt.Errorf("reading sampler generation %d: %w", gen, err)
	}
	return samples, stats, nil
}

// drainStats sums and zeroes the per-CPU counters of generation gen.
func (s *Sampler) drainStats(gen uint32) (Stats, error) {
	var perCPU []samplerSampleStats
	if err := s.objs.Stats.Lookup(gen, &perCPU); err != nil {
		return Stats{}, fmt.Errorf("stats: %w", err)
	}
	var st Stats
	for _, c := range perCPU {
		st.Samples += c.Samples
		st.MapFull += c.MapFull
		st.StackMapFull += c.StackMapFull
		st.Unwind.FramesByTable += c.FramesTable
		st.Unwind.FramesByFramePointer += c.FramesFp
		st.Unwind.Complete += c.StopEnd
		st.Unwind.NoRule += c.StopNoRule
		st.Unwind.ReadError += c.StopReadError
		st.Unwind.Truncated += c.StopDepth
		st.Unwind.UnknownReported += c.Unknown
	}
	if err := s.objs.Stats.Update(gen, make([]samplerSampleStats, len(perCPU)), ebpf.UpdateExist); err != nil {
		return st, fmt.Errorf("clearing stats: %w", err)
	}
	return st, nil
}

// drainHash reads and deletes every entry of a hash map, in batches of chunk
// where the kernel has them (5.6+), else one by one.
func drainHash[K comparable, V any](m *ebpf.Map, chunk int) ([]K, []V, error) {
	var (
		keys   []K
		values []V
		cursor ebpf.MapBatchCursor
		kbuf   = make([]K, chunk)
		vbuf   = make([]V, chunk)
	)
	for {
		n, err := m.BatchLookupAndDelete(&cursor, kbuf, vbuf, nil)
		keys = append(keys, kbuf[:n]...)
		values = append(values, vbuf[:n]...)
		switch {
		case errors.Is(err, ebpf.ErrKeyNotExist):
			return keys, values, nil
		case errors.Is(err, ebpf.ErrNotSupported) && len(keys) == 0:
			return drainHashOneByOne[K, V](m)
		case err != nil:
			return keys, values, fmt.Errorf("%s: %w", m, err)
		}
	}
}

func drainHashOneByOne[K comparable, V any](m *ebpf.Map) ([]K, []V, error) {
	var (
		keys   []K
		values []V
		k      K
		v      V
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		keys = append(keys, k)
		values = append(values, v)
	}
	if err := it.Err(); err != nil {
		return keys, values, fmt.Errorf("%s: %w", m, err)
	}
	for _, k := range keys {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return keys, values, fmt.Errorf("%s: %w", m, err)
		}
	}
	return keys, values, nil
}

// Close stops sampling and releases the perf events, the program and the maps.
// Samples not drained are lost. Close is idempotent.
func (s *Sampler) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.objs == nil {
		return nil
	}
	var errs []error
	for _, ev := range s.events {
		if err := ev.close(); err != nil {
			errs = append(errs, fmt.Errorf("closing perf event on CPU %d: %w", ev.cpu, err))
		}
	}
	s.events = nil
	if err := s.objs.Close(); err != nil {
		errs = append(errs, fmt.Errorf("closing BPF objects: %w", err))
	}
	s.objs = nil
	return errors.Join(errs...)
}
