//go:build linux

package symbolize

import (
	"os"

	"golang.org/x/sys/unix"
)

// mapRange maps n bytes of f from offset off read-only and private: data is those
// bytes, whole the mapping to unmap (it starts at the page boundary before off). The
// pages are the page cache's: nothing is read until touched, and the kernel can drop
// them again, so a table's bytes are not the agent's heap.
func mapRange(f *os.File, off, n int64) (data, whole []byte, err error) {
	if n <= 0 {
		return nil, nil, unix.EINVAL
	}
	page := int64(os.Getpagesize())
	start := off &^ (page - 1)
	whole, err = unix.Mmap(int(f.Fd()), start, int(off-start+n), unix.PROT_READ, unix.MAP_PRIVATE)
	if err != nil {
		return nil, nil, err
	}
	return whole[off-start : off-start+n : off-start+n], whole, nil
}

// unmap releases a mapping of mapRange.
func unmap(whole []byte) { _ = unix.Munmap(whole) }

// dropPages lets the kernel take back the pages of a mapping that were touched (they
// are clean copies of the file: touched again, they are read again from the page
// cache), so that reading a whole table once, to check it, does not stay in the RSS.
func dropPages(whole []byte) { _ = unix.Madvise(whole, unix.MADV_DONTNEED) }
