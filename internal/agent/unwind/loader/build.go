package loader

import (
	"debug/elf"

	"github.com/kprof/kprof/internal/agent/unwind"
)

// defaultBuild builds a table with the unwind package's builder and its default limits.
func defaultBuild(f *elf.File) (*unwind.Table, error) { return unwind.FromELF(f) }
