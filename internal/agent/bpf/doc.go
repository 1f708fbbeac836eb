// Package bpf is the node agent's in-kernel sampler: a perf_event eBPF program,
// attached to one perf event per CPU, that counts samples per thread and
// {user stack, kernel stack} in kernel maps. The agent calls Sampler.Drain once per
// interval and gets the aggregated counts with their raw stacks (instruction
// addresses, leaf first); there is no per-sample record to user space.
//
// Maps (c/sampler.bpf.c): per generation g in {0, 1}, a stack map stacks<g>
// (BPF_MAP_TYPE_STACK_TRACE, user and kernel stacks, Config.MaxStacks), a count
// map counts<g> (preallocated hash {tgid, pid, user stack id, kernel stack id} →
// count, Config.MaxEntries) and the per-CPU counters stats[g] (samples, stack
// collisions, map-full drops). active_gen selects the generation samples go to.
// Drain flips active_gen, then updates the array-of-maps "barrier", which returns
// only after synchronize_rcu(), i.e. once every program that may have read the old
// generation has finished (perf_event programs run under rcu_read_lock()); only
// then does it read and clear the idle generation, stack map last, so the stack ids
// of its counts stay valid until read and no sample is lost or counted twice.
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
