//go:build linux

package perfdata

import (
	"bufio"
	"io"
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

// maxNotesBytes bounds the read of /sys/kernel/notes.
const maxNotesBytes = 64 << 10

// kernelBuildID is the running kernel's GNU build ID from the ELF notes in
// /sys/kernel/notes, nil when unavailable.
func kernelBuildID() []byte {
	f, err := os.Open("/sys/kernel/notes")
	if err != nil {
		return nil
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxNotesBytes))
	if err != nil {
		return nil
	}
	return gnuBuildIDNote(b)
}

// gnuBuildIDNote finds the NT_GNU_BUILD_ID note (type 3, name "GNU") in a
// sequence of ELF notes (namesz, descsz, type, name and desc padded to 4 bytes).
func gnuBuildIDNote(b []byte) []byte {
	const ntGNUBuildID = 3
	pad := func(n uint32) int { return int((n + 3) &^ 3) }
	for len(b) >= 12 {
		namesz, descsz, typ := le.Uint32(b), le.Uint32(b[4:]), le.Uint32(b[8:])
		b = b[12:]
		if pad(namesz) > len(b) || pad(namesz)+pad(descsz) > len(b) {
			return nil
		}
		name, desc := b[:namesz], b[pad(namesz):pad(namesz)+int(descsz)]
		b = b[pad(namesz)+pad(descsz):]
		if typ == ntGNUBuildID && string(name) == "GNU\x00" && len(desc) > 0 && len(desc) <= 20 {
			return append([]byte(nil), desc...)
		}
	}
	return nil
}
