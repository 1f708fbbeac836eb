package bpf

// Mapping is one executable mapping of a process as the unwinder sees it: process
// addresses [Start, End); the file's virtual address of pc is pc - Bias; its unwind
// rows are RowLen rows of the row array from RowOff. RowLen 0 means frame pointers.
//
// Placeholder for branch i14-bpfunwind, which owns this type (issue 14).
type Mapping struct {
	Start, End, Bias uint64
	RowOff, RowLen   uint32
}

// MaxMappings is how many mappings SetProcess takes per process (placeholder, see Mapping).
const MaxMappings = 64
