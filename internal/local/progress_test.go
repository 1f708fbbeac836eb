package local

import (
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/logging/logtest"
	"github.com/kprof/kprof/internal/testenv"
)

func TestRenderBar(t *testing.T) {
	for _, tc := range []struct {
		name           string
		elapsed, total time.Duration
		want           string
	}{
		{"nothing recorded shows an empty bar", 0, 30 * time.Second, "cpu [....................] 0s/30s"},
		{"twelve of thirty seconds fills eight of twenty cells", 12*time.Second + 900*time.Millisecond, 30 * time.Second, "cpu [########............] 12s/30s"},
		{"the end of the recording fills the bar", 30 * time.Second, 30 * time.Second, "cpu [####################] 30s/30s"},
		{"a profile less than a second late is not called waited for", 30*time.Second + 900*time.Millisecond, 30 * time.Second, "cpu [####################] 30s/30s"},
		{"time past the end says the target is being waited for", 33 * time.Second, 30 * time.Second, "cpu [####################] 30s/30s waiting for the target"},
		{"a negative elapsed time counts as zero", -time.Second, 10 * time.Second, "cpu [....................] 0s/10s"},
		{"minutes are shown as durations", 90 * time.Second, 2 * time.Minute, "cpu [###############.....] 1m30s/2m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := RenderBar("cpu", tc.elapsed, tc.total, 20); got != tc.want {
				t.Fatalf("RenderBar(%s, %s) = %q, want %q", tc.elapsed, tc.total, got, tc.want)
			}
		})
	}
}

// fakeClock is a settable clock for the start and the final draw of a Progress.
type fakeClock struct{ offset atomic.Int64 }

func (c *fakeClock) now(base time.Time) func() time.Time {
	return func() time.Time { return base.Add(time.Duration(c.offset.Load())) }
}

func TestProgress(t *testing.T) {
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		terminal bool
		want     []string
	}{
		{"a terminal gets a bar redrawn in place and a final full bar", true, []string{
			"\rcpu [....................] 0s/30s\x1b[K",
			"\rcpu [######..............] 10s/30s\x1b[K",
			"\rcpu [#############.......] 20s/30s\x1b[K",
			"\rcpu [####################] 30s/30s\x1b[K\n",
		}},
		{"a non-terminal gets a log line per tick", false, []string{
			`msg="recording profile" type=cpu elapsed=10s total=30s`,
			`msg="recording profile" type=cpu elapsed=20s total=30s`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, logs testenv.SyncBuffer
			var clock fakeClock
			ticks := make(chan time.Time)
			p, err := StartProgress(ProgressConfig{
				Label: "cpu", Total: 30 * time.Second, Terminal: tc.terminal, Out: &out,
				Logger: logtest.Func(slog.LevelInfo, func(line string) { _, _ = logs.Write([]byte(line + "\n")) }),
				ticks:  ticks, now: clock.now(base),
			})
			if err != nil {
				t.Fatalf("StartProgress: %v", err)
			}
			t.Cleanup(p.Stop)
			ticks <- base.Add(10 * time.Second)
			ticks <- base.Add(20 * time.Second)
			clock.offset.Store(int64(31 * time.Second)) // Stop draws at most the full bar
			p.Stop()
			p.Stop() // idempotent

			got := out.String() + logs.String()
			pos := 0
			for _, w := range tc.want {
				i := strings.Index(got[pos:], w)
				if i < 0 {
					t.Fatalf("progress output %q lacks %q after offset %d", got, w, pos)
				}
				pos += i + len(w)
			}
			if tc.terminal && logs.String() != "" {
				t.Errorf("terminal mode also logged %q", logs.String())
			}
			if !tc.terminal && out.String() != "" {
				t.Errorf("log mode also drew %q", out.String())
			}
		})
	}
}

func TestProgressConfigRejectsBadFields(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  ProgressConfig
		want string
	}{
		{"a zero total is rejected", ProgressConfig{Label: "cpu"}, "Total must be positive"},
		{"a terminal without a writer is rejected", ProgressConfig{Total: time.Second, Terminal: true}, "Out is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := StartProgress(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("StartProgress(%+v) = %v, want an error containing %q", tc.cfg, err, tc.want)
			}
		})
	}
}

func TestRenderCountBar(t *testing.T) {
	for _, tc := range []struct {
		name        string
		done, total int
		want        string
	}{
		{"nothing done shows an empty bar", 0, 27, "merge [....................] 0/27 profiles"},
		{"twelve of twenty-seven fills eight cells", 12, 27, "merge [########............] 12/27 profiles"},
		{"all done fills the bar", 27, 27, "merge [####################] 27/27 profiles"},
		{"no work at all shows a full bar", 0, 0, "merge [####################] 0/0 profiles"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := RenderCountBar("merge", tc.done, tc.total, "profiles", 20); got != tc.want {
				t.Fatalf("RenderCountBar(%d, %d) = %q, want %q", tc.done, tc.total, got, tc.want)
			}
		})
	}
}

func TestCountProgressRedrawsOnATerminalAtMostEveryInterval(t *testing.T) {
	var out strings.Builder
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var clock fakeClock
	c := NewCountProgress("merge", "profiles", 4, true, &out, nil)
	c.now = clock.now(base)
	c.last = base
	c.Set(1) // same instant: not redrawn
	clock.offset.Store(int64(DefaultTerminalRefresh))
	c.Set(2)
	c.Set(3) // same instant again
	c.Stop()
	want := "\rmerge [....................] 0/4 profiles\x1b[K" +
		"\rmerge [##########..........] 2/4 profiles\x1b[K" +
		"\rmerge [###############.....] 3/4 profiles\x1b[K\n"
	if out.String() != want {
		t.Fatalf("drawn %q, want %q", out.String(), want)
	}
}
