//go:build ignore

// The kprof in-kernel sampler: a perf_event program, run on every sample of the
// perf events the agent opens (one per CPU), that counts samples per
// {tgid, pid, user stack id, kernel stack id} in a hash map. Nothing is sent to
// user space per sample: the agent reads and clears the maps once per interval.
//
// Two generations of maps (stacks0/counts0 and stacks1/counts1, stats[0] and
// stats[1]) let the agent read one while samples go to the other: it flips
// active_gen, waits until no program can still be running with the old value (an
// update of an array-of-maps from user space returns only after synchronize_rcu(),
// and perf_event programs run under rcu_read_lock()), and then reads and clears the
// idle generation, whose stack ids stay valid because its stack map is cleared only
// after its counts were read.
//
// Regenerate with `go generate ./internal/agent/bpf/` (hack/install-bpf-tools.sh).

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

// PERF_MAX_STACK_DEPTH: frames per stack; must not exceed kernel.perf_event_max_stack
// (default 127). Mirrored by MaxStackDepth in Go (checked by a test).
#define MAX_STACK_DEPTH 127
#define GENERATIONS 2

// Not in vmlinux.h (they are macros in the UAPI headers).
#define E2BIG 7
#define ENOMEM 12
#define EFAULT 14
#define EEXIST 17

// Key of the count maps. A negative stack id means no stack (no user stack in a
// kernel thread, unreadable user stack, or a stack-map collision): always -1.
struct sample_key {
	__u32 tgid;
	__u32 pid;
	__s32 user_stack_id;
	__s32 kernel_stack_id;
};

// Per-CPU counters of one generation.
struct sample_stats {
	__u64 samples;    // samples taken (not excluded), counted or not
	__u64 collisions; // stacks dropped: their stack-map bucket held another stack (-EEXIST)
	__u64 map_full;   // samples not counted: the count map was full (-E2BIG/-ENOMEM) or busy
};

#define STACK_MAP(name)                                                   \
	struct {                                                              \
		__uint(type, BPF_MAP_TYPE_STACK_TRACE);                           \
		__uint(key_size, sizeof(__u32));                                  \
		__uint(value_size, MAX_STACK_DEPTH * sizeof(__u64));              \
		__uint(max_entries, 16384); /* Config.MaxStacks */                \
	} name SEC(".maps")

#define COUNT_MAP(name)                                                   \
	struct {                                                              \
		__uint(type, BPF_MAP_TYPE_HASH); /* preallocated: NMI-safe */     \
		__type(key, struct sample_key);                                   \
		__type(value, __u64);                                             \
		__uint(max_entries, 32768); /* Config.MaxEntries */               \
	} name SEC(".maps")

STACK_MAP(stacks0);
STACK_MAP(stacks1);
COUNT_MAP(counts0);
COUNT_MAP(counts1);

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32); // generation
	__type(value, struct sample_stats);
	__uint(max_entries, GENERATIONS);
} stats SEC(".maps");

// active_gen[0] is the generation samples go to; only the agent writes it.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
} active_gen SEC(".maps");

// barrier is never read by the program: the agent updates barrier[0] after flipping
// active_gen, and the kernel returns from an update of an array-of-maps only after
// synchronize_rcu(), that is once every program that might have read the old
// generation has finished.
struct barrier_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
} barrier_inner SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__type(key, __u32);
	__uint(max_entries, 1);
	__array(values, struct barrier_inner);
} barrier SEC(".maps") = {
	.values = {[0] = &barrier_inner},
};

// Thread-group ids whose samples are dropped (Config.ExcludePIDs); value unused.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u8);
	__uint(max_entries, 1); // resized by the agent
} excluded_tgids SEC(".maps");

// Set by the agent before loading: drop samples of the idle task (pid 0).
volatile const __u32 exclude_idle = 1;

static __always_inline void count(void *counts, struct sample_key *key, struct sample_stats *st)
{
	__u64 *val = bpf_map_lookup_elem(counts, key);
	if (val) {
		__sync_fetch_and_add(val, 1);
		return;
	}
	__u64 one = 1;
	long err = bpf_map_update_elem(counts, key, &one, BPF_NOEXIST);
	if (!err)
		return;
	if (err == -EEXIST) { // another CPU inserted the key first
		val = bpf_map_lookup_elem(counts, key);
		if (val) {
			__sync_fetch_and_add(val, 1);
			return;
		}
	}
	// -E2BIG/-ENOMEM: the map is full; anything else (-EBUSY) loses the sample too.
	st->map_full++;
}

static __always_inline __s32 stack_id(long id, struct sample_stats *st)
{
	if (id >= 0)
		return (__s32)id;
	if (id == -EEXIST)
		st->collisions++;
	return -1;
}

SEC("perf_event")
int kprof_sample(struct bpf_perf_event_data *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	__u32 pid = (__u32)id;

	if (pid == 0 && exclude_idle)
		return 0;
	if (bpf_map_lookup_elem(&excluded_tgids, &tgid))
		return 0;

	__u32 zero = 0;
	__u32 *active = bpf_map_lookup_elem(&active_gen, &zero);
	if (!active)
		return 0;
	__u32 gen = *active & 1;
	struct sample_stats *st = bpf_map_lookup_elem(&stats, &gen);
	if (!st)
		return 0;
	st->samples++;

	struct sample_key key = {.tgid = tgid, .pid = pid};
	if (gen == 0) {
		key.kernel_stack_id = stack_id(bpf_get_stackid(ctx, &stacks0, 0), st);
		key.user_stack_id = stack_id(bpf_get_stackid(ctx, &stacks0, BPF_F_USER_STACK), st);
		count(&counts0, &key, st);
	} else {
		key.kernel_stack_id = stack_id(bpf_get_stackid(ctx, &stacks1, 0), st);
		key.user_stack_id = stack_id(bpf_get_stackid(ctx, &stacks1, BPF_F_USER_STACK), st);
		count(&counts1, &key, st);
	}
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL"; // bpf_get_stackid is GPL-only
