package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/spf13/cobra"
)

func TestExitStatus(t *testing.T) {
	byInt := fmt.Errorf("fetch http://x: %w", signalError{os.Interrupt})
	byTerm := fmt.Errorf("fetch http://x: %w", signalError{syscall.SIGTERM})
	cli := &cobra.Command{Use: "run"}
	service := &cobra.Command{Use: "agent", Annotations: map[string]string{serviceAnnotation: "true"}}
	for _, tc := range []struct {
		name    string
		cmd     *cobra.Command
		err     error
		sig     os.Signal
		code    int
		printed string
	}{
		{"success exits 0 silently", cli, nil, nil, 0, ""},
		{"an error is printed once and exits 1", cli, errors.New("boom"), nil, 1, "kprof: boom\n"},
		{"Ctrl-C exits 130 even when the command stopped cleanly", cli, nil, os.Interrupt, 130, ""},
		{"Ctrl-C exits 130 without repeating the interruption as an error", cli, byInt, os.Interrupt, 130, ""},
		{"Ctrl-C with another error prints it and exits 130", cli, errors.New("disk full"), os.Interrupt, 130, "kprof: disk full\n"},
		{"SIGTERM exits 143", cli, nil, syscall.SIGTERM, 143, ""},
		{"a command cut short by SIGTERM exits 143 and says so", cli, byTerm, syscall.SIGTERM, 143, "kprof: interrupted by SIGTERM\n"},
		{"a service stopped cleanly by SIGTERM exits 0", service, nil, syscall.SIGTERM, 0, ""},
		{"a service stopped cleanly by Ctrl-C exits 0", service, nil, os.Interrupt, 0, ""},
		{"a service whose shutdown fails after SIGTERM exits 143, printing why", service, errors.New("agent shutdown: timeout"), syscall.SIGTERM, 143, "kprof: agent shutdown: timeout\n"},
		{"no command (a flag error before one ran) exits 1", nil, errors.New(`unknown command "x"`), nil, 1, "kprof: unknown command \"x\"\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if code := exitStatus(tc.cmd, tc.err, tc.sig, &buf); code != tc.code || buf.String() != tc.printed {
				t.Errorf("exit %d printing %q, want %d printing %q", code, buf.String(), tc.code, tc.printed)
			}
		})
	}
}
