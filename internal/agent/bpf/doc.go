// Package bpf is the node agent's in-kernel sampler: a perf_event eBPF program,
// attached to one perf event per CPU, that counts samples per thread and
// {user stack, kernel stack} in kernel maps. The agent calls Sampler.Drain once per
// interval and gets the aggregated counts with their raw stacks (instruction
// addresses, leaf first); there is no per-sample record to user space.
//
// Stacks. Kernel stacks come from bpf_get_stack. User stacks are walked by the
// program itself (x86-64, kernel 5.17+): per frame it looks the instruction
// address up in the process's executable mappings (processes: tgid → up to
// MaxMappings sorted {start, end, bias, row_off, row_len}, binary search), then in
// that mapping's unwind table (unwind_rows, one array of 16-byte rows shared by all
// tables, Config.MaxUnwindRows, binary search of address - bias; the address - 1
// for every frame but the first), evaluates the CFA rule of the row
// (internal/agent/unwind), reads the return address at CFA-8 and the saved RBP,
// and goes on with RSP = CFA. A frame with no table (row_len 0, as for Go
// binaries, which keep frame pointers), no row, or a process with no mappings
// takes a frame-pointer step instead. A sample of a process with no mappings, or
// at an address in none of its mappings, adds its tgid to the bounded unknown set,
// which the loader reads with TakeUnknown to learn which processes to load
// (WriteRows of TableRows(table) at an offset it allocates below RowCapacity,
// then SetProcess; DeleteProcess when the process exits). The walk stops at the outermost frame, a return
// address 0, a read error, a frame with neither a row nor a usable frame pointer,
// or MaxStackDepth frames; Stats.Unwind counts frames and stops.
//
// Where the unwinder cannot load (kernels before 5.17, other architectures, or a
// verifier that refuses it) Open loads the frame-pointer-only program, compiled
// from the same source with -DKPROF_FP_ONLY (bpf_get_stack for user stacks too,
// kernel 5.3+ for its bounded loops), and logs one line saying so.
//
// Maps: per generation g in {0, 1}, a stack map stacks<g> (a hash map of ours,
// user and kernel stacks, Config.MaxStacks: a 64-bit hash of the frames → {len,
// pcs[MaxStackDepth]}; an insert whose key holds other frames probes the next
// keys, so a stack is lost only when the map is full, and then its sample is not
// counted but counted in Stats.MapFull), a count map counts<g> (preallocated hash
// {tgid, pid, user stack key, kernel stack key} → count, Config.MaxEntries, key 0
// = no stack) and the per-CPU counters stats[g]. active_gen selects the
// generation samples go to. Drain flips active_gen, then updates the
// array-of-maps "barrier", which returns only after synchronize_rcu(), i.e. once
// every program that may have read the old generation has finished (perf_event
// programs run under rcu_read_lock()); only then does it read and clear the idle
// generation, stack map last, so the stack keys of its counts stay valid until
// read and no sample is lost or counted twice.
//
// Memory with the defaults: unwind_rows 32 MiB, processes 8 MiB (1024 × 8200
// bytes), stacks 2 × 16384 × 1 KiB (~34 MiB), counts 2 × 32768 small entries
// (~6 MiB), per-CPU scratch 2 KiB per CPU. Kernels from 5.11 charge it to the
// memory cgroup, not RLIMIT_MEMLOCK.
//
// The C source is under c/ (//go:build ignore). `go generate` compiles it with
// bpf2go into sampler_bpfel.{go,o} and sampler_bpfeb.{go,o}, which are committed
// so that `go build` needs no clang; hack/install-bpf-tools.sh installs what
// regeneration needs, hack/gen-vmlinux.sh refreshes c/vmlinux.h. c.sha256 records
// the C inputs of the committed objects, so a test fails when they drift apart.
//
// Linux only: on other systems Open returns an error.
package bpf

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go@v0.22.0 -tags linux -target bpfel,bpfeb -type sample_key -type sample_stats -type mapping sampler c/sampler.bpf.c -- -I/usr/include -Wall -Werror -O2 -g
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go@v0.22.0 -tags linux -target bpfel,bpfeb samplerfp c/sampler.bpf.c -- -I/usr/include -Wall -Werror -O2 -g -DKPROF_FP_ONLY
//go:generate sh -c "sha256sum c/*.c c/*.h > c.sha256"
