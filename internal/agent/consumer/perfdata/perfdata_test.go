package perfdata

import (
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/agent/consumer/perfdata/perfdatatest"
	"github.com/kprof/kprof/internal/agent/profile"
)

// syntheticEvent has two processes, a build-ID mapping, inlined frames and
// a kernel stack.
func syntheticEvent(start time.Time) *profile.Event {
	libc := &profile.Mapping{Start: 0x7f0000000000, Limit: 0x7f0000100000, Offset: 0x1000, File: "/usr/lib/libc.so.6",
		BuildID: "0123456789abcdef0123456789abcdef01234567"}
	exe := &profile.Mapping{Start: 0x400000, Limit: 0x500000, File: "/app/server", BuildID: "go-build-id/not-hex"}
	return &profile.Event{
		Config: "cpu", Version: 1, EventName: "cpu-clock", Period: 10_000_000,
		Start: start, End: start.Add(10 * time.Second),
		Samples: []profile.Sample{
			{PID: 10, TID: 11, Count: 3, Labels: map[string]string{"comm": "server"}, Frames: []profile.Frame{
				{Address: 0xffffffff81000010, Kernel: true}, {Address: 0xffffffff81000020, Kernel: true},
				{Address: 0x400100, Mapping: exe}, {Address: 0x400100, Mapping: exe}, {Address: 0x7f0000000200, Mapping: libc}}},
			{PID: 20, TID: 20, Count: 1, Labels: map[string]string{"comm": "worker"}, Frames: []profile.Frame{
				{Address: 0x7f0000000300, Mapping: libc}}},
		},
	}
}

func TestWriteThenReadGivesBackTheEvent(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	ev := syntheticEvent(start)
	path := filepath.Join(t.TempDir(), "perf.data")
	if err := (Writer{Path: path}).Write(ev); err != nil {
		t.Fatal(err)
	}
	f, err := perfdatatest.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("the attr is a software cpu-clock with the period and sample type", func(t *testing.T) {
		want := perfdatatest.Attr{Type: typeSoftware, Size: attrSize, Config: 0, Period: 10_000_000, SampleType: sampleType,
			Flags: flagMmap | flagComm | flagMmap2 | flagSampleIDAll, IDs: []uint64{1}}
		if !reflect.DeepEqual(f.Attrs, []perfdatatest.Attr{want}) {
			t.Errorf("attrs %+v, want %+v", f.Attrs, want)
		}
	})
	t.Run("every thread has its comm", func(t *testing.T) {
		want := []perfdatatest.Comm{{PID: 10, TID: 11, Comm: "server"}, {PID: 20, TID: 20, Comm: "worker"}}
		if !reflect.DeepEqual(f.Comms, want) {
			t.Errorf("comms %+v, want %+v", f.Comms, want)
		}
	})
	t.Run("every process has an mmap2 of each mapping, with the GNU build id", func(t *testing.T) {
		id, _ := hex.DecodeString("0123456789abcdef0123456789abcdef01234567")
		var got []perfdatatest.Mmap
		for _, m := range f.Mmaps {
			if m.Type == recMmap2 {
				got = append(got, m)
			}
		}
		want := []perfdatatest.Mmap{
			{Type: recMmap2, Misc: miscUser, PID: 10, TID: 10, Addr: 0x400000, Len: 0x100000, Prot: 5, Flags: 2, Filename: "/app/server"},
			{Type: recMmap2, Misc: miscUser | miscMmapBuildID, PID: 10, TID: 10, Addr: 0x7f0000000000, Len: 0x100000, Pgoff: 0x1000,
				BuildID: id, Prot: 5, Flags: 2, Filename: "/usr/lib/libc.so.6"},
			{Type: recMmap2, Misc: miscUser | miscMmapBuildID, PID: 20, TID: 20, Addr: 0x7f0000000000, Len: 0x100000, Pgoff: 0x1000,
				BuildID: id, Prot: 5, Flags: 2, Filename: "/usr/lib/libc.so.6"},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("mmap2 %+v\nwant %+v", got, want)
		}
	})
	t.Run("samples carry leaf ip, period x count, time in the interval and marked callchains", func(t *testing.T) {
		want := []perfdatatest.SampleRecord{
			{Misc: miscKernel, IP: 0xffffffff81000010, PID: 10, TID: 11, Time: uint64(start.UnixNano()), Period: 30_000_000,
				Callchain: []uint64{contextKernel, 0xffffffff81000010, 0xffffffff81000020, contextUser, 0x400100, 0x7f0000000200}},
			{Misc: miscUser, IP: 0x7f0000000300, PID: 20, TID: 20, Time: uint64(ev.End.UnixNano()), Period: 10_000_000,
				Callchain: []uint64{contextUser, 0x7f0000000300}},
		}
		if !reflect.DeepEqual(f.Samples, want) {
			t.Errorf("samples %+v\nwant %+v", f.Samples, want)
		}
	})
	t.Run("the required feature sections are present", func(t *testing.T) {
		for _, bit := range []int{featBuildID, featHostname, featOSRelease, featArch, featNrCPUs, featEventDesc} {
			if _, ok := f.Features[bit]; !ok {
				t.Errorf("feature %d missing", bit)
			}
		}
		if s := string(f.Features[featEventDesc]); !strings.Contains(s, "cpu-clock") {
			t.Errorf("EVENT_DESC does not name cpu-clock")
		}
		if !strings.Contains(string(f.Features[featBuildID]), "/usr/lib/libc.so.6") {
			t.Errorf("BUILD_ID section does not list libc")
		}
	})
}

func TestWriteRejectsUnknownEventAndLeavesNoFile(t *testing.T) {
	dir := t.TempDir()
	ev := syntheticEvent(time.Now())
	ev.EventName = "bogus"
	if err := (Writer{Path: filepath.Join(dir, "perf.data")}).Write(ev); err == nil {
		t.Fatal("Write of an unknown event succeeded")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("dir holds %d files after a failed write", len(ents))
	}
}

func TestReadRejectsNonPerfData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x")
	os.WriteFile(path, []byte(strings.Repeat("x", 200)), 0o600)
	if _, err := perfdatatest.Read(path); err == nil {
		t.Error("Read accepted a file without PERFILE2 magic")
	}
}

func TestConfigValidateNamesBadFields(t *testing.T) {
	cfg := Config{RotateEvery: -1, MaxFileBytes: -1, MaxFiles: -1, MaxTotalBytes: -1}
	err := cfg.Validate()
	for _, field := range []string{"Dir", "RotateEvery", "MaxFileBytes", "MaxFiles", "MaxTotalBytes"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("error %v does not name %s", err, field)
		}
	}
	good := Config{Dir: "/x"}
	good.SetDefaults()
	if err := good.Validate(); err != nil || good.RotateEvery != DefaultRotateEvery || good.MaxFiles != DefaultMaxFiles {
		t.Errorf("defaults: %v %+v", err, good)
	}
}

func dataFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "perf-*.data"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestConsumerRotatesAndRetains(t *testing.T) {
	dir := t.TempDir()
	c, err := New(Config{Dir: dir, RotateEvery: time.Minute, MaxFiles: 2})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c.now = func() time.Time { return now }
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if err := c.Consume(ctx, syntheticEvent(now)); err != nil {
			t.Fatal(err)
		}
		if got := len(dataFiles(t, dir)); got != min(i, 2) {
			t.Errorf("after event %d: %d finished files, want %d", i, got, min(i, 2))
		}
		now = now.Add(time.Minute)
	}
	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	files := dataFiles(t, dir)
	want := []string{filepath.Join(dir, "perf-20260102-030505.data"), filepath.Join(dir, "perf-20260102-030605.data")}
	if !reflect.DeepEqual(files, want) {
		t.Errorf("files %v, want the newest two %v", files, want)
	}
	for _, p := range files {
		f, err := perfdatatest.Read(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Samples) != 2 {
			t.Errorf("%s: %d samples, want 2", p, len(f.Samples))
		}
	}
	if err := c.Consume(ctx, syntheticEvent(now)); err == nil {
		t.Error("Consume after Shutdown succeeded")
	}
}

// The byte bound removes the oldest files first, whatever MaxFiles allows.
func TestConsumerKeepsTheNewestFilesWithinMaxTotalBytes(t *testing.T) {
	// One file's size, from a consumer without bounds.
	probe := t.TempDir()
	pc, err := New(Config{Dir: probe})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := pc.Consume(context.Background(), syntheticEvent(start)); err != nil {
		t.Fatal(err)
	}
	if err := pc.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dataFiles(t, probe)[0])
	if err != nil {
		t.Fatal(err)
	}
	size := st.Size()

	dir := t.TempDir()
	c, err := New(Config{Dir: dir, RotateEvery: time.Minute, MaxFiles: 100, MaxTotalBytes: 2*size + size/2})
	if err != nil {
		t.Fatal(err)
	}
	now := start
	c.now = func() time.Time { return now }
	ctx := context.Background()
	for range 5 {
		if err := c.Consume(ctx, syntheticEvent(now)); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Minute)
	}
	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	files := dataFiles(t, dir)
	want := []string{filepath.Join(dir, "perf-20260102-030705.data"), filepath.Join(dir, "perf-20260102-030805.data")}
	if !reflect.DeepEqual(files, want) {
		t.Errorf("files %v, want the newest two %v (files of %d bytes, bound %d)", files, want, size, 2*size+size/2)
	}
}

func TestConsumerRotatesOnSizeAndEventChange(t *testing.T) {
	dir := t.TempDir()
	c, err := New(Config{Dir: dir, MaxFileBytes: 1, MaxTotalBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Consume(ctx, syntheticEvent(time.Now())); err != nil {
		t.Fatal(err)
	}
	if got := len(dataFiles(t, dir)); got != 1 {
		t.Errorf("a file past MaxFileBytes was not finalized: %d files", got)
	}
	c.cfg.MaxFileBytes = 1 << 30
	ev := syntheticEvent(time.Now())
	if err := c.Consume(ctx, ev); err != nil {
		t.Fatal(err)
	}
	ev2 := syntheticEvent(time.Now())
	ev2.EventName = "page-faults"
	ev2.Period = 100
	if err := c.Consume(ctx, ev2); err != nil {
		t.Fatal(err)
	}
	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(dataFiles(t, dir)); got != 3 {
		t.Errorf("%d files, want 3 (size rotation, event change, shutdown)", got)
	}
}

func TestShutdownAfterNoSamplesWritesNothing(t *testing.T) {
	dir := t.TempDir()
	c, err := New(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Consume(context.Background(), &profile.Event{EventName: "cpu-clock", Frequency: 99}); err != nil {
		t.Fatal(err)
	}
	if err := c.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("dir holds %d entries", len(ents))
	}
}
