package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/spf13/cobra"
)

// signalError is the cause of the command context's cancellation by a signal.
type signalError struct{ sig os.Signal }

func (e signalError) Error() string { return "interrupted by " + signalName(e.sig) }

func signalName(s os.Signal) string {
	if s == os.Interrupt {
		return "SIGINT"
	}
	if s == syscall.SIGTERM {
		return "SIGTERM"
	}
	return s.String()
}

// signalExitCode is the shell's 128+N for a process ended by signal N.
func signalExitCode(s os.Signal) int {
	if n, ok := s.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return 1
}

// signals turns SIGINT and SIGTERM into the cancellation of ctx: the first one
// cancels it (every role then shuts down gracefully); a second one exits at once.
type signals struct {
	ctx  context.Context
	stop func()

	mu  sync.Mutex
	got os.Signal
}

// notifySignals starts listening; stop ends it. exit is os.Exit outside tests.
func notifySignals(stderr io.Writer, exit func(int)) *signals {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan struct{})
	s := &signals{ctx: ctx}
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			signal.Stop(ch)
			close(done)
		})
	}
	go func() {
		var first os.Signal
		select {
		case first = <-ch:
		case <-done:
			return
		}
		s.mu.Lock()
		s.got = first
		s.mu.Unlock()
		if first == os.Interrupt {
			fmt.Fprintln(stderr, "kprof: interrupted: stopping gracefully; press Ctrl-C again to exit at once")
		}
		cancel(signalError{first})
		select {
		case second := <-ch:
			fmt.Fprintf(stderr, "kprof: %s again: exiting without waiting for the shutdown to finish\n", signalName(second))
			exit(signalExitCode(second))
		case <-done:
		}
	}()
	return s
}

// received is the first signal, nil when none came.
func (s *signals) received() os.Signal {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got
}

// exitStatus prints err, unless it only reports the interruption that sig already
// announced, and returns the exit status of cmd: 128+N after signal N stopped it (130
// for Ctrl-C), 1 on another error, 0 otherwise. A service (the operator, the agent)
// that a signal stopped cleanly exits 0: a signal is how it is stopped.
func exitStatus(cmd *cobra.Command, err error, sig os.Signal, stderr io.Writer) int {
	if isService(cmd) && err == nil {
		sig = nil
	}
	var bySignal signalError
	interrupted := errors.As(err, &bySignal)
	switch {
	case err != nil && !interrupted:
		fmt.Fprintln(stderr, "kprof:", err)
	case interrupted && sig != os.Interrupt: // Ctrl-C was announced when it came
		fmt.Fprintln(stderr, "kprof:", bySignal)
	}
	switch {
	case sig != nil:
		return signalExitCode(sig)
	case err != nil:
		return 1
	}
	return 0
}
