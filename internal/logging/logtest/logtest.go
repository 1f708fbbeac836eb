// Package logtest gives tests a *slog.Logger that writes through t.Log, so a
// component's logs show up beside the failure they explain.
package logtest

import (
	"log/slog"
	"strings"
	"testing"
)

// New logs records at info level and above to t.Log.
func New(t testing.TB) *slog.Logger { return NewAt(t, slog.LevelInfo) }

// NewAt logs records at level and above to t.Log.
func NewAt(t testing.TB, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: level}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// Func passes each record at level and above to fn as one line of slog's text
// format (msg="..." key=value ...), for a test that looks for what was logged.
func Func(level slog.Level, fn func(line string)) *slog.Logger {
	return slog.New(slog.NewTextHandler(funcWriter(fn), &slog.HandlerOptions{Level: level}))
}

type funcWriter func(string)

// Write gets one whole record: slog handlers write each record in one call.
func (f funcWriter) Write(p []byte) (int, error) {
	f(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
