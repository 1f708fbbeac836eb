// Package symbolize turns raw instruction addresses sampled on the host into function
// names, the way the node agent needs them:
//
//   - kernel addresses from /proc/kallsyms (text symbols, loaded once, reloadable; a
//     kallsyms hidden by kptr_restrict is detected and reported, never guessed at);
//   - user addresses from the file mapped at that address, found through
//     /proc/PID/maps and opened through /proc/PID/root (so a container's own files are
//     read) or /proc/PID/map_files when the path is gone: ELF .symtab, else .dynsym, and
//     for Go binaries .gopclntab (kept by `-ldflags=-s -w`), which also gives file:line,
//     and, from Go 1.20 on, the inline trees: an address in inlined code gives a frame
//     per function, innermost first, all with that address. An address is placed in
//     the file by its file offset and the PT_LOAD program headers, which handles PIE,
//     ASLR and fixed-address executables alike.
//   - a stripped file (no .symtab, as distributions ship libraries) from its separate
//     debug file, found as gdb finds it: by build ID under .build-id/ of
//     /usr/lib/debug, else by its .gnu_debuglink (next to the file, in .debug/ beside
//     it, under /usr/lib/debug at its directory), in the process's root first, then
//     in Config.DebugDir; the debug file's build ID, or the debuglink's CRC-32, must
//     match (debugfile.go);
//   - JIT-compiled code (Node with --perf-basic-prof, .NET with
//     DOTNET_PerfMapEnabled=1, the JVM with perf-map-agent) from the process's perf
//     map, /tmp/perf-N.map inside its root, N its pid in its own pid namespace: an
//     address in anonymous executable memory is looked up there, and its mapping is
//     profile.AnonMappingFile. The map is read when the process is observed and again,
//     from where the last read stopped, when a lookup misses and it has grown (at most
//     once per second), within Config.MaxPerfMapBytes and MaxPerfMapEntries; it is
//     dropped with the process (jit.go, perfmap.go).
//
// Symbol tables are cached by build ID (GNU build ID, else Go build ID, else
// device+inode+mtime), so the same binary in a hundred containers is parsed once; the
// cache holds at most Config.MaxFiles tables and Config.MaxCacheBytes of their estimated
// heap, and evicts the least recently used. The stacks of one profile interval are
// symbolized through a Batch, which holds every table it used until it is closed and
// shares them with the other open Batches: each table is read at most once for them,
// even when the tables in use do not fit in the cache.
// Mappings are captured by Observe when a process is first seen, and the symbol tables
// of its files are loaded then, so a process that exits before its samples are
// symbolized is still symbolized (as long as its tables were not evicted meanwhile).
//
// Every read of a file is bounded: files larger than Config.MaxFileBytes are refused,
// section sizes are checked against the file size, and malformed files are counted in
// Stats, never a panic.
package symbolize
