// Package unwind turns the call frame information of an executable (.eh_frame,
// and .debug_frame where present) into a compact unwind table: per range of
// instruction addresses, how to find the caller's frame without frame pointers.
// The agent's BPF program walks user stacks with these tables (see
// internal/agent/bpf); loading them per process is unwind/loader's job.
//
// Only x86-64 is supported: on other architectures the agent keeps
// frame-pointer unwinding.
package unwind

// CFAType says how a row finds the canonical frame address (CFA): the value of
// the stack pointer in the caller just before the call, so that the return
// address is at CFA-8 on x86-64.
type CFAType uint8

// The rules a row can hold. The values are shared with the BPF program
// (internal/agent/bpf/c); changing one is changing both.
const (
	// CFANone: no call frame information covers this address (code without CFI,
	// a gap between FDEs, or a rule the BPF program cannot evaluate): unwind this
	// frame by frame pointer.
	CFANone CFAType = 0
	// CFARSP: CFA = RSP + CFAOffset.
	CFARSP CFAType = 1
	// CFARBP: CFA = RBP + CFAOffset.
	CFARBP CFAType = 2
	// CFAPLT: a PLT stub, whose CFI is the expression every linker emits for
	// them: CFA = RSP + CFAOffset, plus 8 when (RIP & 15) >= 11.
	CFAPLT CFAType = 3
	// CFAEnd: the return address is undefined here (the outermost frame, such as
	// _start or a thread's start routine): the stack is complete.
	CFAEnd CFAType = 4
)

// Row is one rule of a table: it covers the addresses from PC up to the next
// row's PC.
type Row struct {
	// PC is the first address the row covers: a virtual address of the ELF file
	// (as in its program headers), not of a process.
	PC uint64
	// CFAOffset is added to the CFA's register (CFARSP, CFARBP, CFAPLT).
	CFAOffset int32
	// RBPOffset says where the caller's RBP is saved: at CFA + RBPOffset. 0
	// means RBP still holds the caller's value (not saved, or restored).
	RBPOffset int16
	// CFA is the rule.
	CFA CFAType
}

// Table is the unwind table of one executable file: rows sorted by PC, no two
// neighbours with the same rule (a row lasts until the next one starts). An
// address below the first row, or at or past End, has no rule (CFANone).
type Table struct {
	Rows []Row
	// End is the first address past the last FDE.
	End uint64
	// Stats say what building the table met (for the loader's metrics); the
	// BPF program does not read them.
	Stats Stats
}
