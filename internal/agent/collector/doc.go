// Package collector is one profile collection of the node agent: it runs the in-kernel
// sampler (internal/agent/bpf) for one collection config, and every interval drains it,
// symbolizes the stacks (kernel frames first, then user frames, leaf first), labels each
// sample with its process's attributes and hands the interval to Publish as a
// profile.Event.
//
// The sampler is drained every second (DrainEvery) between intervals, not only at the
// end of one: a process is observed by the Symbolizer when it is first seen, so its
// mappings are captured while it still runs, and a process that lives a few seconds is
// still symbolized when its interval is published. Counts drained early are kept,
// aggregated by stack, until the interval ends.
package collector
