//go:build linux

package perfdata

import (
	"bufio"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

func uname() (release, machine string) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", ""
	}
	return unix.ByteSliceToString(u.Release[:]), unix.ByteSliceToString(u.Machine[:])
}

// kernelText is the address of _text from /proc/kallsyms, 0 when unreadable
// or hidden (kptr_restrict).
func kernelText() uint64 {
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 3 && fs[2] == "_text" {
			a, err := strconv.ParseUint(fs[0], 16, 64)
			if err != nil {
				return 0
			}
			return a
		}
	}
	return 0
}
