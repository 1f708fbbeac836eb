package pprof

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	googlepprof "github.com/google/pprof/profile"

	"github.com/kprof/kprof/internal/agent/profile"
)

func filesIn(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// Each event becomes one .pb.gz file that parses as the event's profile; each
// config keeps its newest MaxFiles; names from configs are made safe; an
// event without samples writes nothing.
func TestFilesWritesOneProfilePerEventWithRetention(t *testing.T) {
	dir := t.TempDir()
	f, err := NewFiles(FilesConfig{Dir: dir, MaxFiles: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	start := time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC)
	for i := range 3 {
		ev := testEvent()
		ev.Config, ev.Start, ev.End = "cpu", start.Add(time.Duration(i)*10*time.Second), start.Add(time.Duration(i+1)*10*time.Second)
		if err := f.Consume(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	other := testEvent()
	other.Config, other.Start = "../team/a b", start
	if err := f.Consume(ctx, other); err != nil {
		t.Fatal(err)
	}
	empty := &profile.Event{Config: "idle", Start: start}
	if err := f.Consume(ctx, empty); err != nil {
		t.Fatal(err)
	}
	if err := f.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"pprof-.._team_a_b-20261123-070000.pb.gz",
		"pprof-cpu-20261123-070010.pb.gz",
		"pprof-cpu-20261123-070020.pb.gz",
	}
	if got := filesIn(t, dir); !slices.Equal(got, want) {
		t.Fatalf("files %q, want %q", got, want)
	}
	r, err := os.Open(filepath.Join(dir, want[2]))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p, err := googlepprof.Parse(r)
	if err != nil {
		t.Fatalf("parse %s: %v", want[2], err)
	}
	if p.TimeNanos != start.Add(20*time.Second).UnixNano() || len(p.Sample) == 0 {
		t.Errorf("profile time %d with %d samples, want the third event's", p.TimeNanos, len(p.Sample))
	}
	if err := f.Consume(ctx, testEvent()); err == nil || !strings.Contains(err.Error(), "after shutdown") {
		t.Errorf("consume after shutdown: %v", err)
	}
}

func TestFilesConfigNamesBadFields(t *testing.T) {
	c := FilesConfig{MaxFiles: -1, MaxTotalBytes: -1}
	err := c.Validate()
	for _, w := range []string{"Dir: required", "MaxFiles:", "MaxTotalBytes:"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v lacks %q", err, w)
		}
	}
}
