package symbolize

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// maxMapsBytes bounds the read of /proc/PID/maps (a process with 100k mappings has
// about 10 MiB).
const maxMapsBytes = 64 << 20

// procMapping is one executable line of /proc/PID/maps.
type procMapping struct {
	start, limit, offset uint64
	inode                uint64
	// path as the process sees it, without the " (deleted)" suffix; "" for anonymous
	// memory, "[vdso]" and the like for the kernel's.
	path    string
	deleted bool
}

// isFile tells whether the mapping is backed by a file that can be opened.
func (m procMapping) isFile() bool {
	return strings.HasPrefix(m.path, "/") && m.inode != 0
}

// parseMaps returns the executable mappings of a /proc/PID/maps, in file order (which
// is address order). At most maxMapsBytes are read.
func parseMaps(r io.Reader) ([]procMapping, error) {
	lr := &io.LimitedReader{R: r, N: maxMapsBytes + 1}
	sc := bufio.NewScanner(lr)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	var out []procMapping
	for sc.Scan() {
		m, exec, err := parseMapsLine(sc.Text())
		if err != nil {
			return nil, err
		}
		if exec {
			out = append(out, m)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read maps: %w", err)
	}
	if lr.N <= 0 {
		return nil, fmt.Errorf("read maps: larger than %d bytes", maxMapsBytes)
	}
	return out, nil
}

// parseMapsLine parses "start-limit perms offset dev inode   path"; exec tells whether
// the mapping is executable.
func parseMapsLine(line string) (m procMapping, exec bool, err error) {
	fields := make([]string, 0, 5)
	rest := line
	for len(fields) < 5 {
		rest = strings.TrimLeft(rest, " ")
		i := strings.IndexByte(rest, ' ')
		if i < 0 {
			fields, rest = append(fields, rest), ""
			break
		}
		fields, rest = append(fields, rest[:i]), rest[i+1:]
	}
	if len(fields) < 5 {
		return m, false, fmt.Errorf("maps line %q: %d fields, want at least 5", line, len(fields))
	}
	bad := func(what string, err error) (procMapping, bool, error) {
		return procMapping{}, false, fmt.Errorf("maps line %q: %s: %w", line, what, err)
	}
	lo, hi, ok := strings.Cut(fields[0], "-")
	if !ok {
		return bad("range", fmt.Errorf("no '-' in %q", fields[0]))
	}
	if m.start, err = strconv.ParseUint(lo, 16, 64); err != nil {
		return bad("start", err)
	}
	if m.limit, err = strconv.ParseUint(hi, 16, 64); err != nil {
		return bad("limit", err)
	}
	if m.limit <= m.start {
		return bad("range", fmt.Errorf("limit %#x not above start %#x", m.limit, m.start))
	}
	if m.offset, err = strconv.ParseUint(fields[2], 16, 64); err != nil {
		return bad("offset", err)
	}
	if m.inode, err = strconv.ParseUint(fields[4], 10, 64); err != nil {
		return bad("inode", err)
	}
	m.path = strings.TrimLeft(rest, " ")
	if p, ok := strings.CutSuffix(m.path, " (deleted)"); ok {
		m.path, m.deleted = p, true
	}
	perms := fields[1]
	return m, len(perms) >= 3 && perms[2] == 'x', nil
}
