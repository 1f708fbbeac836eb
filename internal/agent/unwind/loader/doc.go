// Package loader gives the BPF sampler the unwind tables of the processes it samples,
// so that it can walk user stacks of code built without frame pointers.
//
// The sampler reports the processes it sampled without knowing them (or at a PC none
// of their mappings holds, after a dlopen). For each, the Loader reads
// /proc/PID/maps, opens each executable file as the process sees it (through
// /proc/PID/root, with symlinks resolved inside that root: see
// symbolize.OpenMappedObject), identifies it by build ID (or device, inode, mtime and
// size), builds its unwind table once per node (internal/agent/unwind), writes the
// rows to a free extent of the kernel's row array and tells the sampler the
// process's mappings. Tables are shared by reference count; a table no process uses
// stays in the kernel in an LRU until its rows are needed. A mapping gets frame
// pointers (RowLen 0) when its file is a Go binary, has no usable call frame
// information, when there is no room, or when the process has more mappings than the
// sampler takes; each is counted by reason.
//
// Exited processes are found by checking the loaded ones against procfs every
// Config.ExitCheckEvery, and deleted. All work per tick is bounded.
package loader
