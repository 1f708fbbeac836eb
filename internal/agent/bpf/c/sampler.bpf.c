//go:build ignore

// The kprof in-kernel sampler: a perf_event program, run on every sample of the
// perf events the agent opens (one per CPU), that counts samples per
// {tgid, pid, user stack, kernel stack} in a hash map. Nothing is sent to user
// space per sample: the agent reads and clears the maps once per interval.
//
// Stacks are kept in a hash map of our own, keyed by a 64-bit hash of the frames:
// an insert that finds its key taken by other frames probes the next keys, so a
// stack is lost only when the map is full (unlike BPF_MAP_TYPE_STACK_TRACE, which
// drops a stack whose bucket is taken).
//
// User stacks are walked by the program itself (x86-64): per frame, the unwind
// table row of the instruction address (tables written by the agent from the
// binaries' .eh_frame) gives the canonical frame address (CFA), the return address
// is at CFA-8 and the caller's RBP at CFA+rbp_off; an address with no table (a
// process or mapping without one, as Go binaries, which keep frame pointers) takes
// one frame-pointer step. Compiled with -DKPROF_FP_ONLY it is the fallback for
// kernels older than 5.17 (no bpf_loop): user stacks by frame pointer only, with
// bpf_get_stack.
//
// Two generations of maps (stacks0/counts0 and stacks1/counts1, stats[0] and
// stats[1]) let the agent read one while samples go to the other: it flips
// active_gen, waits until no program can still be running with the old value (an
// update of an array-of-maps from user space returns only after synchronize_rcu(),
// and perf_event programs run under rcu_read_lock()), and then reads and clears the
// idle generation, counts first and stacks after, so that the stack keys of its
// counts stay valid until read.
//
// Regenerate with `go generate ./internal/agent/bpf/` (hack/install-bpf-tools.sh).

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

// PERF_MAX_STACK_DEPTH: frames per stack; must not exceed kernel.perf_event_max_stack
// (default 127). Mirrored by MaxStackDepth in Go (checked by a test).
#define MAX_STACK_DEPTH 127
#define GENERATIONS 2
// Executable mappings per process (MaxMappings in Go); a power of two.
#define MAX_MAPPINGS 256
// Keys tried for a stack whose hash key holds other frames.
#define STACK_PROBES 4
// Iterations of a binary search over the rows of one mapping: 2^32 rows at most.
#define ROW_SEARCH_STEPS 32
#define MAPPING_SEARCH_STEPS 9 // log2(MAX_MAPPINGS) + 1

// Not in vmlinux.h (they are macros in the UAPI headers).
#define E2BIG 7
#define ENOMEM 12
#define EFAULT 14
#define EEXIST 17
#define PF_KTHREAD 0x00200000
// User addresses are below 2^47 (2^56 with 5-level page tables).
#define USER_SPACE_END (1ULL << 56)

// Key of the count maps: the stack keys are keys of the stack map of the same
// generation, 0 when there is no stack (a kernel thread has no user stack).
struct sample_key {
	__u32 tgid;
	__u32 pid;
	__u64 user_stack;
	__u64 kernel_stack;
};

// A stack: len instruction addresses, leaf first. pcs past len are garbage.
struct stack {
	__u32 len;
	__u32 pad;
	__u64 pcs[MAX_STACK_DEPTH];
};

// Per-CPU counters of one generation.
struct sample_stats {
	__u64 samples;         // samples taken (not excluded), counted or not
	__u64 map_full;        // samples not counted: the count or stack map was full (or busy)
	__u64 stack_map_full;  // of map_full: the stack map was full
	__u64 frames_table;    // user frames unwound with a table row
	__u64 frames_fp;       // user frames unwound by frame pointer
	__u64 stop_end;        // user stacks complete: outermost frame (CFA_END) or return address 0
	__u64 stop_no_rule;    // user stacks ended at a frame with no row and no usable frame pointer
	__u64 stop_read_error; // user stacks ended because the stack could not be read
	__u64 stop_depth;      // user stacks truncated at MAX_STACK_DEPTH frames
	__u64 unknown;         // processes (or new code of a known process) reported in unknown
};

// CFA rules of an unwind row: internal/agent/unwind's CFAType (checked by a test).
enum cfa_type {
	CFA_NONE = 0, // no rule: frame-pointer step
	CFA_RSP = 1,  // CFA = RSP + cfa_off
	CFA_RBP = 2,  // CFA = RBP + cfa_off
	CFA_PLT = 3,  // CFA = RSP + cfa_off (+8 when (RIP & 15) >= 11)
	CFA_END = 4,  // outermost frame: the stack is complete
};

// One row of an unwind table: from pc (a virtual address of the ELF file) up to
// the next row's pc. internal/agent/unwind.Row.
struct unwind_row {
	__u64 pc;
	__s32 cfa_off;
	__s16 rbp_off; // caller's RBP at CFA + rbp_off; 0: RBP unchanged
	__u8 cfa_type;
	__u8 pad;
};

// An executable mapping of a process: file address = pc - bias. Its table is
// unwind_rows[row_off, row_off + row_len); row_len 0: frame pointers.
struct mapping {
	__u64 start;
	__u64 end;
	__u64 bias;
	__u32 row_off;
	__u32 row_len;
};

// The executable mappings of a process, sorted by start, not overlapping.
struct process {
	__u32 len;
	__u32 pad;
	struct mapping maps[MAX_MAPPINGS];
};

// Flags of the unknown set.
#define UNKNOWN_PROCESS 1 // sampled, but not in processes
#define UNKNOWN_PC 2      // a PC in none of its mappings (a library loaded later)

#define STACK_MAP(name)                                                   \
	struct {                                                              \
		__uint(type, BPF_MAP_TYPE_HASH); /* preallocated: NMI-safe */     \
		__type(key, __u64);                                               \
		__type(value, struct stack);                                      \
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

// Per-CPU scratch space for the stacks of the sample being taken (the BPF stack
// has 512 bytes): [0] user, [1] kernel.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct stack);
	__uint(max_entries, 2);
} scratch SEC(".maps");

// The unwind rows of every loaded table, at offsets the agent allocates.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct unwind_row);
	__uint(max_entries, 1 << 21); // Config.MaxUnwindRows
} unwind_rows SEC(".maps");

// tgid → its executable mappings, written by the agent (Sampler.SetProcess).
struct {
	__uint(type, BPF_MAP_TYPE_HASH); /* preallocated: NMI-safe */
	__type(key, __u32);
	__type(value, struct process);
	__uint(max_entries, 1024); // Config.MaxProcesses
} processes SEC(".maps");

// tgid → UNKNOWN_* flags: processes the agent should load (Sampler.TakeUnknown).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 4096); // Config.MaxUnknown
} unknown SEC(".maps");

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

// ANDed with the hash of every stack: all ones, but for a test that makes stacks
// collide to check that they are kept apart.
volatile const __u64 stack_hash_mask = ~0ULL;

// Puts enum cfa_type in the BTF, for bpf2go (-type cfa_type) and the test that
// compares it with internal/agent/unwind; never read.
const volatile enum cfa_type cfa_types = CFA_END;

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

// The loops over the frames of a stack are bpf_loop callbacks where the kernel
// has bpf_loop (the unwinder), so that the verifier checks their body once;
// bounded loops in the frame-pointer-only program (kernels before 5.17).
struct frames_ctx {
	struct stack *a, *b;
	__u64 h;
	int same;
};

static long hash_frame(__u64 i, struct frames_ctx *c)
{
	struct stack *a = c->a;
	if (!a || i >= MAX_STACK_DEPTH || i >= a->len)
		return 1;
	__u64 h = (c->h ^ a->pcs[i]) * 0x9e3779b97f4a7c15ULL;
	c->h = h ^ (h >> 29);
	return 0;
}

static long compare_frame(__u64 i, struct frames_ctx *c)
{
	struct stack *a = c->a, *b = c->b;
	if (!a || !b || i >= MAX_STACK_DEPTH || i >= a->len)
		return 1;
	if (a->pcs[i] != b->pcs[i]) {
		c->same = 0;
		return 1;
	}
	return 0;
}

#ifdef KPROF_FP_ONLY
#define EACH_FRAME(fn, c)                                     \
	for (__u32 i = 0; i < MAX_STACK_DEPTH; i++)               \
		if (fn(i, c))                                         \
			break
#else
#define EACH_FRAME(fn, c) bpf_loop(MAX_STACK_DEPTH, fn, c, 0)
#endif

// hash_stack is a 64-bit hash of the frames and their number, never 0.
static __always_inline __u64 hash_stack(struct stack *s)
{
	struct frames_ctx c = {.a = s, .h = 0xcbf29ce484222325ULL ^ s->len};
	EACH_FRAME(hash_frame, &c);
	__u64 h = c.h & stack_hash_mask;
	return h ? h : 1;
}

static __always_inline int same_stack(struct stack *a, struct stack *b)
{
	if (a->len != b->len)
		return 0;
	struct frames_ctx c = {.a = a, .b = b, .same = 1};
	EACH_FRAME(compare_frame, &c);
	return c.same;
}

// store_stack stores the stack s in the stack map and returns its key: 0 for an
// empty stack, -1 when the map is full (the sample is then lost).
static __noinline __u64 store_stack(void *stacks, struct stack *s)
{
	if (!s || s->len == 0)
		return 0;
	__u64 h = hash_stack(s);
	for (__u32 probe = 0; probe < STACK_PROBES; probe++) {
		__u64 key = h + probe;
		if (key == 0 || key == (__u64)-1)
			continue;
		long err = bpf_map_update_elem(stacks, &key, s, BPF_NOEXIST);
		if (!err)
			return key;
		if (err != -EEXIST)
			return (__u64)-1; // full (-E2BIG/-ENOMEM) or busy
		struct stack *old = bpf_map_lookup_elem(stacks, &key);
		if (old && same_stack(old, s))
			return key;
		// Another stack with the same hash (or deleted meanwhile): next key.
	}
	return (__u64)-1;
}

#ifndef KPROF_FP_ONLY

// The user registers the walk starts from, and the state it carries.
struct walk {
	__u64 ip, sp, bp;
	struct process *proc; // NULL: the process has no entry
	struct stack *out;
	struct sample_stats *st;
	__u32 tgid;
	__u32 unknown; // UNKNOWN_* flags to report
};

struct mapping_search {
	struct process *proc;
	__u32 lo, hi;
	__u64 pc;
};

// mapping_search_step halves [lo, hi) towards the first mapping that starts
// above pc.
static long mapping_search_step(__u64 i, struct mapping_search *m)
{
	struct process *proc = m->proc;
	if (!proc || m->lo >= m->hi)
		return 1;
	__u32 mid = m->lo + (m->hi - m->lo) / 2;
	if (proc->maps[mid & (MAX_MAPPINGS - 1)].start <= m->pc)
		m->lo = mid + 1;
	else
		m->hi = mid;
	return 0;
}

// find_mapping returns the mapping of proc that holds pc, or NULL.
static __always_inline struct mapping *find_mapping(struct process *proc, __u64 pc)
{
	struct mapping_search m = {.proc = proc, .hi = proc->len, .pc = pc};
	if (m.hi > MAX_MAPPINGS)
		m.hi = MAX_MAPPINGS;
	bpf_loop(MAPPING_SEARCH_STEPS, mapping_search_step, &m, 0);
	if (m.lo == 0 || m.lo != m.hi)
		return NULL;
	struct mapping *found = &proc->maps[(m.lo - 1) & (MAX_MAPPINGS - 1)];
	if (pc >= found->end)
		return NULL;
	return found;
}

struct row_search {
	__u32 lo, hi;
	__u64 addr;
};

// row_search_step halves [lo, hi) towards the first row whose pc is above addr.
static long row_search_step(__u64 i, struct row_search *r)
{
	if (r->lo >= r->hi)
		return 1;
	__u32 mid = r->lo + (r->hi - r->lo) / 2;
	struct unwind_row *row = bpf_map_lookup_elem(&unwind_rows, &mid);
	if (!row) {
		r->hi = r->lo; // past the array: no row
		return 1;
	}
	if (row->pc <= r->addr)
		r->lo = mid + 1;
	else
		r->hi = mid;
	return 0;
}

// find_row returns the row of rows[off, off+len) that covers addr, or NULL.
static __always_inline struct unwind_row *find_row(__u32 off, __u32 len, __u64 addr)
{
	struct row_search r = {.lo = off, .hi = off + len, .addr = addr};
	if (r.hi < off)
		return NULL;
	bpf_loop(ROW_SEARCH_STEPS + 1, row_search_step, &r, 0);
	if (r.lo == off || r.lo != r.hi)
		return NULL;
	__u32 idx = r.lo - 1;
	return bpf_map_lookup_elem(&unwind_rows, &idx);
}

// unwind_step records w->ip as frame i and moves w to the caller's registers.
// Returns 1 to stop (the stack is complete or cannot go on), 0 to go on.
static long unwind_step(__u64 i, struct walk *w)
{
	struct stack *out = w->out;
	struct sample_stats *st = w->st;
	if (!out || !st)
		return 1;
	if (w->ip == 0) {
		st->stop_end++;
		return 1;
	}
	if (i >= MAX_STACK_DEPTH)
		return 1;
	out->pcs[i] = w->ip;
	out->len = i + 1;

	// The address looked up: a return address may be just past its call's FDE.
	__u64 pc = i == 0 ? w->ip : w->ip - 1;
	struct unwind_row *row = NULL;
	if (w->proc) {
		struct mapping *m = find_mapping(w->proc, pc);
		if (!m)
			w->unknown |= UNKNOWN_PC;
		else if (m->row_len)
			row = find_row(m->row_off, m->row_len, pc - m->bias);
	}

	__u64 cfa, ra = 0, bp = w->bp;
	__u8 type = row ? row->cfa_type : CFA_NONE;
	switch (type) {
	case CFA_END:
		st->stop_end++;
		return 1;
	case CFA_RSP:
		cfa = w->sp + (__s64)row->cfa_off;
		break;
	case CFA_RBP:
		cfa = w->bp + (__s64)row->cfa_off;
		break;
	case CFA_PLT:
		cfa = w->sp + (__s64)row->cfa_off + ((w->ip & 15) >= 11 ? 8 : 0);
		break;
	default: // CFA_NONE, or a rule this program does not know
		// Frame pointer: [RBP] is the caller's RBP, [RBP+8] the return address.
		if (w->bp == 0 || w->bp < w->sp) {
			st->stop_no_rule++;
			return 1;
		}
		if (bpf_probe_read_user(&bp, sizeof(bp), (void *)w->bp) ||
		    bpf_probe_read_user(&ra, sizeof(ra), (void *)(w->bp + 8))) {
			st->stop_read_error++;
			return 1;
		}
		st->frames_fp++;
		w->sp = w->bp + 16;
		w->bp = bp;
		w->ip = ra;
		goto next;
	}
	if (bpf_probe_read_user(&ra, sizeof(ra), (void *)(cfa - 8))) {
		st->stop_read_error++;
		return 1;
	}
	if (row->rbp_off && bpf_probe_read_user(&bp, sizeof(bp), (void *)(cfa + (__s64)row->rbp_off))) {
		st->stop_read_error++;
		return 1;
	}
	st->frames_table++;
	w->sp = cfa;
	w->bp = bp;
	w->ip = ra;
next:
	if (ra >= USER_SPACE_END) { // not a user address: a frame pointer that was none
		st->stop_no_rule++;
		return 1;
	}
	if (i == MAX_STACK_DEPTH - 1) { // the last frame bpf_loop calls for
		if (ra)
			st->stop_depth++;
		else
			st->stop_end++;
		return 1;
	}
	return 0;
}

// user_regs returns the user registers of the sampled thread: those of the sample
// when it hit user mode, else those saved on entry to the kernel. 0: no user
// context (a kernel thread).
// x86-64 struct pt_regs in its UAPI layout (stable), declared here so that no CO-RE
// relocation depends on the kernel's field names (cs became a union in 6.9).
struct user_pt_regs {
	__u64 r15, r14, r13, r12, bp, bx, r11, r10, r9, r8, ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
};

// user_regs sets the user registers the walk starts from: those of the sample when
// it hit user mode, else those saved on entry to the kernel. Returns 0 when there
// is no user context (a kernel thread).
static __always_inline int user_regs(struct bpf_perf_event_data *ctx, struct walk *w)
{
	struct user_pt_regs *regs = (struct user_pt_regs *)ctx; // ctx->regs is at offset 0
	if ((regs->cs & 3) == 3) {
		w->ip = regs->ip;
		w->sp = regs->sp;
		w->bp = regs->bp;
		return 1;
	}
	struct task_struct *task = bpf_get_current_task_btf();
	if (task->flags & PF_KTHREAD)
		return 0;
	struct user_pt_regs *saved = (struct user_pt_regs *)bpf_task_pt_regs(task);
	if (!saved)
		return 0;
	w->ip = saved->ip;
	w->sp = saved->sp;
	w->bp = saved->bp;
	return w->ip != 0;
}

static __always_inline void report_unknown(__u32 tgid, __u32 flags, struct sample_stats *st)
{
	__u32 *old = bpf_map_lookup_elem(&unknown, &tgid);
	if (old) {
		if ((*old & flags) != flags)
			*old |= flags; // a hint: a lost race loses nothing that matters
		return;
	}
	if (!bpf_map_update_elem(&unknown, &tgid, &flags, BPF_NOEXIST))
		st->unknown++;
}

// user_stack fills out with the user stack of the sampled thread.
static __always_inline void user_stack(struct bpf_perf_event_data *ctx, __u32 tgid, struct stack *out,
				       struct sample_stats *st)
{
	struct walk w = {.out = out, .st = st, .tgid = tgid};
	out->len = 0;
	if (!user_regs(ctx, &w))
		return;
	w.proc = bpf_map_lookup_elem(&processes, &tgid);
	if (!w.proc)
		w.unknown = UNKNOWN_PROCESS;
	bpf_loop(MAX_STACK_DEPTH, unwind_step, &w, 0);
	if (w.unknown)
		report_unknown(tgid, w.unknown, st);
}

#else // KPROF_FP_ONLY

static __always_inline void user_stack(struct bpf_perf_event_data *ctx, __u32 tgid, struct stack *out,
				       struct sample_stats *st)
{
	long n = bpf_get_stack(ctx, out->pcs, sizeof(out->pcs), BPF_F_USER_STACK);
	out->len = n > 0 ? n / sizeof(__u64) : 0;
}

#endif // KPROF_FP_ONLY

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

	__u32 zero = 0, one = 1;
	__u32 *active = bpf_map_lookup_elem(&active_gen, &zero);
	if (!active)
		return 0;
	__u32 gen = *active & 1;
	struct sample_stats *st = bpf_map_lookup_elem(&stats, &gen);
	if (!st)
		return 0;
	st->samples++;

	struct stack *ustack = bpf_map_lookup_elem(&scratch, &zero);
	struct stack *kstack = bpf_map_lookup_elem(&scratch, &one);
	if (!ustack || !kstack)
		return 0;
	long n = bpf_get_stack(ctx, kstack->pcs, sizeof(kstack->pcs), 0);
	kstack->len = n > 0 ? n / sizeof(__u64) : 0;
	user_stack(ctx, tgid, ustack, st);

	void *stacks = gen == 0 ? (void *)&stacks0 : (void *)&stacks1;
	struct sample_key key = {.tgid = tgid, .pid = pid};
	key.kernel_stack = store_stack(stacks, kstack);
	key.user_stack = store_stack(stacks, ustack);
	if (key.kernel_stack == (__u64)-1 || key.user_stack == (__u64)-1) {
		st->map_full++;
		st->stack_map_full++;
		return 0;
	}
	count(gen == 0 ? (void *)&counts0 : (void *)&counts1, &key, st);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL"; // bpf_get_stack is GPL-only
