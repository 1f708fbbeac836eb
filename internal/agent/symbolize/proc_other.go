//go:build !linux

package symbolize

import (
	"errors"
	"fmt"
	"os"
)

func openInRoot(root, path string) (*os.File, error) {
	return nil, fmt.Errorf("open %s in %s: %w", path, root, errors.ErrUnsupported)
}

func openRegular(path string) (*os.File, error) {
	return nil, fmt.Errorf("open %s: %w", path, errors.ErrUnsupported)
}

func statID(f *os.File) (fileID, error) {
	return fileID{}, fmt.Errorf("stat %s: %w", f.Name(), errors.ErrUnsupported)
}
