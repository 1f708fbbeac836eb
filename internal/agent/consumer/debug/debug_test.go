package debug

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/agent/router"
)

func TestSummary(t *testing.T) {
	start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	fn := func(name string) profile.Frame { return profile.Frame{Function: name} }
	for _, tc := range []struct {
		name string
		ev   *profile.Event
		want string
	}{
		{"an event names its top five leaf functions, most samples first, ties by name", &profile.Event{
			Config: "cpu-profile", Version: 3, EventName: "cpu-clock", Period: 10000000,
			Start: start, End: start.Add(10 * time.Second),
			Stats: profile.Stats{MapFullDrops: 3},
			Samples: []profile.Sample{
				{PID: 1, Count: 50, Frames: []profile.Frame{fn("main.work")}},
				{PID: 1, Count: 30, Frames: []profile.Frame{fn("main.work"), fn("main.main")}},
				{PID: 2, Count: 20, Frames: []profile.Frame{{Function: "do_syscall_64", Kernel: true}, fn("syscall.Syscall")}},
				{PID: 3, Count: 5, Frames: []profile.Frame{{Address: 0xdead}}},
				{PID: 3, Count: 5, Frames: []profile.Frame{fn("b.f")}},
				{PID: 3, Count: 5, Frames: []profile.Frame{fn("a.f")}},
				{PID: 4, Count: 1},
			},
		}, `config=cpu-profile version=3 event=cpu-clock period=10000000 start=2026-11-23T10:00:00Z duration=10s samples=116 stacks=7 pids=4 lost=3 top="main.work:80 [k]do_syscall_64:20 0xdead:5 a.f:5 b.f:5"`},
		{"an empty event by frequency", &profile.Event{
			Config: "ctx", EventName: "context-switches", Frequency: 99, Start: start, End: start.Add(time.Second),
		}, `config=ctx version=0 event=context-switches frequency=99 start=2026-11-23T10:00:00Z duration=1s samples=0 stacks=0 pids=0 lost=0 top=""`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Summary(tc.ev); got != tc.want {
				t.Errorf("Summary\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestDebugConsumerWritesOneLinePerEvent(t *testing.T) {
	var buf bytes.Buffer
	d, err := New(&buf)
	if err != nil {
		t.Fatal(err)
	}
	r, err := router.New(router.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Register(d); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.Publish(&profile.Event{Config: "one"})
	r.Publish(&profile.Event{Config: "two"})
	if err := r.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "config=one ") || !strings.HasPrefix(lines[1], "config=two ") {
		t.Errorf("wrote %q, want a line for one then two", buf.String())
	}

	if _, err := New(nil); err == nil {
		t.Error("New(nil) succeeded")
	}
	bad, _ := New(failingWriter{})
	if err := bad.Consume(context.Background(), &profile.Event{}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Consume on a failing writer = %v, want its error", err)
	}
}
