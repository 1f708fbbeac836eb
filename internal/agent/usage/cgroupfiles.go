package usage

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
)

// maxValueFile bounds the read of one cgroup value file. cpu.stat, the longest read, is
// about ten short lines (under 400 bytes); the others hold one number.
const maxValueFile = 4096

// errMalformed marks a file whose content is not what the kernel writes.
var errMalformed = errors.New("malformed")

// Files read, by cgroup version.
const (
	v2CPUFile = "cpu.stat"              // "usage_usec N" line, microseconds
	v1CPUFile = "cpuacct.usage"         // nanoseconds
	v2MemFile = "memory.current"        // bytes
	v1MemFile = "memory.usage_in_bytes" // bytes
)

// readCPU returns the CPU time a cgroup used, in seconds.
func readCPU(dir string, v2 bool) (float64, error) {
	if !v2 {
		ns, err := readUint(filepath.Join(dir, v1CPUFile))
		return float64(ns) / 1e9, err
	}
	path := filepath.Join(dir, v2CPUFile)
	data, err := readLimited(path)
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("usage_usec ")); ok {
			us, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: usage_usec %q: %w", path, v, errMalformed)
			}
			return float64(us) / 1e6, nil
		}
	}
	return 0, fmt.Errorf("%s: no usage_usec line: %w", path, errMalformed)
}

// readMemory returns the memory a cgroup uses, in bytes.
func readMemory(dir string, v2 bool) (float64, error) {
	name := v1MemFile
	if v2 {
		name = v2MemFile
	}
	b, err := readUint(filepath.Join(dir, name))
	return float64(b), err
}

// readUint reads a file holding one decimal number.
func readUint(path string) (uint64, error) {
	data, err := readLimited(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(string(bytes.TrimSpace(data)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a number: %w", path, truncate(data), errMalformed)
	}
	return v, nil
}

// readLimited reads a whole value file of at most maxValueFile bytes; a longer one is
// malformed.
func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxValueFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxValueFile {
		return nil, fmt.Errorf("%s: longer than %d bytes: %w", path, maxValueFile, errMalformed)
	}
	return data, nil
}

// truncate shortens file content quoted in an error.
func truncate(data []byte) []byte {
	if len(data) > 64 {
		return data[:64]
	}
	return data
}
