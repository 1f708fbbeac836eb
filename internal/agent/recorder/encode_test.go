package recorder

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	googlepprof "github.com/google/pprof/profile"

	"github.com/kprof/kprof/internal/agent/profile"
)

func TestProfileIsPprofWithTheWindowsSamplesAndLabels(t *testing.T) {
	r, c, _ := testRecorder(t, Config{})
	feed(t, r, c, 0, 5, func(sec int) []profile.Sample {
		return []profile.Sample{
			sample("shop", "web-0", 10, 10+int32(sec), 9, stackOf("main.hot", "main.main")),
			sample("shop", "web-0", 10, 10, 1, stackOf("main.cold", "main.main")),
		}
	})
	data, w, err := r.Profile("shop", "web-0", at(1), at(4), "cpu 93% of request ≥ 80%")
	if err != nil {
		t.Fatal(err)
	}
	if !w.Start.Equal(at(1)) || !w.End.Equal(at(4)) {
		t.Errorf("window [%s, %s], want [1s, 4s]", w.Start.Sub(t0), w.End.Sub(t0))
	}
	p, err := googlepprof.ParseData(data)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, st := range p.SampleType {
		types = append(types, st.Type+"/"+st.Unit)
	}
	if !slices.Equal(types, []string{"samples/count", "cpu/nanoseconds"}) {
		t.Errorf("sample types %v, want samples/count and cpu/nanoseconds", types)
	}
	if p.TimeNanos != at(1).UnixNano() || p.DurationNanos != int64(3*time.Second) {
		t.Errorf("time %d duration %d, want the window's", p.TimeNanos, p.DurationNanos)
	}
	if len(p.Sample) != 2 {
		t.Fatalf("%d samples, want one per stack (threads added up)", len(p.Sample))
	}
	hot := p.Sample[0]
	if hot.Value[0] != 27 || hot.Value[1] != int64(270*time.Millisecond) {
		t.Errorf("hot stack values %v, want 27 samples, 270ms", hot.Value)
	}
	want := map[string]string{"pod": "web-0", "namespace": "shop", "container": "app", "node": "node-a", "comm": "server", "reason": "cpu 93% of request ≥ 80%"}
	for k, v := range want {
		if got := hot.Label[k]; len(got) != 1 || got[0] != v {
			t.Errorf("label %s = %v, want %q", k, got, v)
		}
	}
	if len(hot.Label) != len(want) {
		t.Errorf("labels %v, want exactly %v", hot.Label, want)
	}
	if pid := hot.NumLabel["pid"]; len(pid) != 1 || pid[0] != 10 || hot.NumLabel["tid"] != nil {
		t.Errorf("numeric labels %v, want pid 10 and no tid", hot.NumLabel)
	}

	t.Run("go tool pprof reads it", func(t *testing.T) {
		goBin, err := exec.LookPath("go")
		if err != nil {
			t.Fatalf("go not in PATH, needed for go tool pprof: %v", err)
		}
		file := filepath.Join(t.TempDir(), "flight.pb.gz")
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, goBin, "tool", "pprof", "-symbolize=none", "-top", "-sample_index=cpu", file).CombinedOutput()
		if err != nil {
			t.Fatalf("go tool pprof: %v\n%s", err, out)
		}
		for _, want := range []string{"main.hot", "main.cold", "Total samples = 300ms", "Type: cpu", "270ms 90.00%  main.hot"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("pprof -top output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("a pod without samples gets a valid empty profile", func(t *testing.T) {
		data, _, err := r.Profile("shop", "idle-0", at(1), at(4), "")
		if err != nil {
			t.Fatal(err)
		}
		p, err := googlepprof.ParseData(data)
		if err != nil || len(p.Sample) != 0 {
			t.Fatalf("empty profile: %v, %d samples", err, len(p.Sample))
		}
	})
}
