//go:build linux

package collector

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/agent/agenttest"

	"github.com/kprof/kprof/internal/agent/bpf"
	"github.com/kprof/kprof/internal/agent/collection"
	"github.com/kprof/kprof/internal/agent/profile"
)

func TestCollectReturnsABusyProcessSymbolizedAndLabelled(t *testing.T) {
	requireSampling(t)
	c := openCollector(t, 99, nil)
	pid := startReady(t, buildWorkload(t, "go", []weighted{{"spin", 1}}), "100")

	start := time.Now()
	mine := profileFor(t, c, pid, time.Second)
	if total(mine) == 0 {
		t.Fatalf("no samples of the busy process %d", pid)
	}
	for _, s := range mine {
		if s.CPUTime != time.Duration(s.Count)*(time.Second/99) {
			t.Errorf("CPUTime %s for count %d at 99 Hz, want count × 1/99 s", s.CPUTime, s.Count)
		}
		if s.Labels[profile.LabelPID] != strconv.Itoa(int(pid)) {
			t.Errorf("sample labels %v, want pid %d", s.Labels, pid)
		}
		seenUser := false
		for _, f := range s.Frames {
			if f.Kernel && seenUser {
				t.Fatalf("kernel frame after a user frame: %+v", s.Frames)
			}
			seenUser = seenUser || !f.Kernel
		}
	}
	if got := shareWith(mine, "main.spin"); got < 0.9 {
		t.Errorf("main.spin is in %.1f%% of the samples of a program spinning in it, want most", 100*got)
	}

	ev, err := c.Collect()
	if err != nil {
		t.Fatal(err)
	}
	if ev.Config != "cpu" || ev.Version != 1 || ev.EventName != "cpu-clock" || ev.Frequency != 99 || ev.Period != 0 {
		t.Errorf("event header %q v%d %q period %d freq %d, want cpu v1 cpu-clock 0 99", ev.Config, ev.Version, ev.EventName, ev.Period, ev.Frequency)
	}
	if ev.Labels[profile.LabelNode] != "node-a" || ev.Labels[profile.LabelCluster] != "test" {
		t.Errorf("event labels %v, want node and cluster", ev.Labels)
	}
	if !ev.Start.After(start) || ev.End.Before(ev.Start) {
		t.Errorf("interval %s..%s does not follow the previous Collect", ev.Start, ev.End)
	}
	var n uint64
	for _, s := range ev.Samples {
		n += s.Count
	}
	if n != ev.Stats.Samples {
		t.Errorf("Stats.Samples %d, want the sum of counts %d", ev.Stats.Samples, n)
	}
}

func TestStartPublishesEveryIntervalAndShutdownPublishesTheLast(t *testing.T) {
	requireSampling(t)
	agenttest.BusyProcess(t)

	got := make(chan *profile.Event, 16)
	c, err := New(Config{
		Collection: collection.CollectionConfig{Name: "cpu", Version: 3, Event: "cpu-clock", SamplePeriod: 1_000_000, Interval: time.Second},
		Symbolizer: newSymbolizer(t),
		Publish:    func(ev *profile.Event) { got <- ev },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err == nil {
		t.Error("a second Start succeeded")
	}
	ev := <-got // one interval, published by the loop
	if ev.Version != 3 || ev.Period != 1_000_000 {
		t.Errorf("event version %d period %d, want 3 and 1000000", ev.Version, ev.Period)
	}
	for _, s := range ev.Samples {
		if s.CPUTime != time.Duration(s.Count)*time.Millisecond {
			t.Fatalf("CPUTime %s for count %d at a 1 ms period", s.CPUTime, s.Count)
		}
	}
	if ev.Stats.Samples == 0 {
		t.Error("an interval with a busy process has no samples")
	}
	if err := c.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The loop may have published more intervals before Shutdown's last one; the
	// last one is there now, and nothing comes after it.
	n := len(got)
	if n == 0 {
		t.Fatal("Shutdown published no final interval")
	}
	if err := c.Shutdown(context.Background()); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	if len(got) != n {
		t.Error("a second Shutdown published again")
	}
	if _, err := c.Collect(); !errors.Is(err, bpf.ErrClosed) {
		t.Errorf("Collect after Shutdown: %v, want ErrClosed", err)
	}
}

func TestShutdownWithoutStartPublishesOnceAndClosesTheSampler(t *testing.T) {
	requireSampling(t)
	var n int
	c := openCollector(t, 19, func(*profile.Event) { n++ })
	for range 2 {
		if err := c.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n != 1 {
		t.Errorf("published %d events, want the one final interval", n)
	}
	if err := c.Start(context.Background()); err == nil {
		t.Error("Start after Shutdown succeeded")
	}
}
