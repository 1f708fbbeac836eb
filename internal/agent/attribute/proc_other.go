//go:build !linux

package attribute

import (
	"errors"
	"fmt"
)

func readProcess(_ string, pid int32) (Process, error) {
	return Process{}, fmt.Errorf("read process %d: %w", pid, errors.ErrUnsupported)
}
