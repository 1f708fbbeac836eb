//go:build !linux

package symbolize

import (
	"errors"
	"os"
)

func mapRange(f *os.File, off, n int64) (data, whole []byte, err error) {
	return nil, nil, errors.ErrUnsupported
}

func unmap(whole []byte) {}

func dropPages(whole []byte) {}
