package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
)

func TestExitStatus(t *testing.T) {
	byInt := fmt.Errorf("fetch http://x: %w", signalError{os.Interrupt})
	byTerm := fmt.Errorf("fetch http://x: %w", signalError{syscall.SIGTERM})
	for _, tc := range []struct {
		name    string
		err     error
		sig     os.Signal
		code    int
		printed string
	}{
		{"success exits 0 silently", nil, nil, 0, ""},
		{"an error is printed once and exits 1", errors.New("boom"), nil, 1, "kprof: boom\n"},
		{"Ctrl-C exits 130 even when the command stopped cleanly", nil, os.Interrupt, 130, ""},
		{"Ctrl-C exits 130 without repeating the interruption as an error", byInt, os.Interrupt, 130, ""},
		{"Ctrl-C with another error prints it and exits 130", errors.New("disk full"), os.Interrupt, 130, "kprof: disk full\n"},
		{"a role that shuts down cleanly on SIGTERM exits 0", nil, syscall.SIGTERM, 0, ""},
		{"a command cut short by SIGTERM exits 143 and says so", byTerm, syscall.SIGTERM, 143, "kprof: interrupted by SIGTERM\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if code := exitStatus(tc.err, tc.sig, &buf); code != tc.code || buf.String() != tc.printed {
				t.Errorf("exit %d printing %q, want %d printing %q", code, buf.String(), tc.code, tc.printed)
			}
		})
	}
}
