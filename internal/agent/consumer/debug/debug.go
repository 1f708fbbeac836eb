// Package debug is the consumer that prints one summary line per profile event,
// what `kprof agent` shows before real consumers are configured.
package debug

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/agent/router"
)

var _ router.Consumer = (*Consumer)(nil)

// debugTopN is how many functions a summary line names.
const debugTopN = 5

// Consumer writes a one-line summary of each event: config, event,
// sampling, interval, sample and stack counts, losses, and the functions with
// the most samples of their own (leaf frames). It is what `kprof agent` prints
// before real consumers are configured.
type Consumer struct {
	mu sync.Mutex
	w  io.Writer
}

// New returns a Consumer that writes to w.
func New(w io.Writer) (*Consumer, error) {
	if w == nil {
		return nil, errors.New("debug consumer: nil writer")
	}
	return &Consumer{w: w}, nil
}

// Name is "debug".
func (d *Consumer) Name() string { return "debug" }

// Consume writes ev's summary line.
func (d *Consumer) Consume(_ context.Context, ev *profile.Event) error {
	line := Summary(ev) + "\n"
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := io.WriteString(d.w, line); err != nil {
		return fmt.Errorf("debug consumer: write: %w", err)
	}
	return nil
}

// Shutdown does nothing: the writer belongs to the caller.
func (d *Consumer) Shutdown(context.Context) error { return nil }

// Summary is the logfmt line Consumer writes for ev, e.g.
//
//	config=cpu-profile version=1 event=cpu-clock period=10000000 start=2026-11-23T10:00:00Z duration=10s samples=120 stacks=14 pids=3 lost=0 top="main.work:80 runtime.mallocgc:20"
func Summary(ev *profile.Event) string {
	var b strings.Builder
	kv := func(k, v string) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k)
		b.WriteByte('=')
		if v == "" || strings.ContainsAny(v, " \"=\t\n") {
			v = strconv.Quote(v)
		}
		b.WriteString(v)
	}
	kv("config", ev.Config)
	kv("version", strconv.FormatInt(ev.Version, 10))
	kv("event", ev.EventName)
	if ev.Frequency > 0 {
		kv("frequency", strconv.FormatUint(ev.Frequency, 10))
	} else {
		kv("period", strconv.FormatUint(ev.Period, 10))
	}
	kv("start", ev.Start.UTC().Format(time.RFC3339))
	kv("duration", ev.End.Sub(ev.Start).String())

	var samples uint64
	pids := map[int32]struct{}{}
	self := map[string]uint64{}
	for _, s := range ev.Samples {
		samples += s.Count
		pids[s.PID] = struct{}{}
		if len(s.Frames) > 0 {
			self[frameName(s.Frames[0])] += s.Count
		}
	}
	kv("samples", strconv.FormatUint(samples, 10))
	kv("stacks", strconv.Itoa(len(ev.Samples)))
	kv("pids", strconv.Itoa(len(pids)))
	kv("lost", strconv.FormatUint(ev.Stats.MapFullDrops, 10))

	type fn struct {
		name  string
		count uint64
	}
	top := make([]fn, 0, len(self))
	for name, count := range self {
		top = append(top, fn{name, count})
	}
	slices.SortFunc(top, func(a, b fn) int {
		if c := cmp.Compare(b.count, a.count); c != 0 {
			return c
		}
		return cmp.Compare(a.name, b.name)
	})
	parts := make([]string, 0, debugTopN)
	for _, f := range top[:min(debugTopN, len(top))] {
		parts = append(parts, f.name+":"+strconv.FormatUint(f.count, 10))
	}
	kv("top", strings.Join(parts, " "))
	return b.String()
}

// frameName is the function's name, or its address when it has none.
func frameName(f profile.Frame) string {
	name := f.Function
	if name == "" {
		name = fmt.Sprintf("0x%x", f.Address)
	}
	if f.Kernel {
		name = "[k]" + name
	}
	return name
}
