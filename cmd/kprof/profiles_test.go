package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/kprof/kprof/internal/index"
	"github.com/kprof/kprof/internal/storage"
	"github.com/kprof/kprof/internal/storage/s3"
	"github.com/kprof/kprof/internal/testenv"
)

func TestProfilesListAndGetShowWhatKprofRunStored(t *testing.T) {
	base := startSampleApp(t)
	cfgFile := filepath.Join(t.TempDir(), "kprof.yaml")
	cfg := "targets: [{name: sample-app, url: " + base + "}]\nprofileTypes: [cpu, goroutine]\ncpuProfileDurationSeconds: 1\n"
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(t.TempDir(), "profiles")
	if _, stderr, err := execute(t, newRunCmd(), "--config", cfgFile, "--once", "--output", store); err != nil {
		t.Fatalf("kprof run --once: %v\nstderr:\n%s", err, stderr)
	}

	stdout, stderr, err := execute(t, newProfilesCmd(), "list", "--store", store)
	if err != nil {
		t.Fatalf("kprof profiles list: %v\nstderr:\n%s", err, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "CAPTURED") {
		t.Fatalf("table has %d lines, want a header and 2 profiles:\n%s", len(lines), stdout)
	}
	for i, typ := range []string{"cpu", "goroutine"} {
		if f := strings.Fields(lines[i+1]); len(f) != 8 || f[2] != "sample-app" || f[4] != typ {
			t.Errorf("row %d = %q, want the sample-app's %s profile", i+1, lines[i+1], typ)
		}
	}

	stdout, _, err = execute(t, newProfilesCmd(), "list", "--store", store, "--type", "cpu", "--since", "1h", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var es []index.Entry
	if err := json.Unmarshal([]byte(stdout), &es); err != nil {
		t.Fatalf("-o json: %v\n%s", err, stdout)
	}
	if len(es) != 1 || es[0].Type != "cpu" || es[0].Service != "sample-app" || es[0].Duration != time.Second || es[0].Size == 0 {
		t.Fatalf("-o json listed %+v, want the one 1s CPU profile", es)
	}

	stdout, _, err = execute(t, newProfilesCmd(), "list", "--store", store, "-o", "name", "--reason", "manual")
	if err != nil {
		t.Fatal(err)
	}
	if names := strings.Fields(stdout); len(names) != 2 || names[0] != es[0].ID {
		t.Errorf("-o name printed %q, want the two IDs, the CPU profile's %q first", names, es[0].ID)
	}

	t.Run("get writes the raw profile to -o FILE", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "cpu.pb.gz")
		if _, stderr, err := execute(t, newProfilesCmd(), "get", "--store", store, es[0].ID, "-o", out); err != nil {
			t.Fatalf("get: %v\n%s", err, stderr)
		}
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(es[0].Location)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatal("the written file differs from the stored profile")
		}
		if _, err := profile.ParseData(got); err != nil {
			t.Fatalf("the written profile does not parse: %v", err)
		}
	})
	t.Run("get writes to stdout when it is not a terminal", func(t *testing.T) {
		stdout, _, err := execute(t, newProfilesCmd(), "get", "--store", store, es[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := profile.ParseData([]byte(stdout)); err != nil {
			t.Fatalf("stdout is not the profile: %v", err)
		}
	})

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"an id that leaves the store is refused", []string{"get", "--store", store, "../../etc/passwd"}, "invalid profile ID"},
		{"a URL-encoded escape is refused", []string{"get", "--store", store, "%2e%2e/x.pb.gz"}, "invalid profile ID"},
		{"a profile over --max-bytes is refused", []string{"get", "--store", store, es[0].ID, "--max-bytes", "10"}, "raise --max-bytes"},
		{"an unknown output format is refused", []string{"list", "--store", store, "-o", "yaml"}, "want table, wide, json or name"},
		{"--since and --from together are refused", []string{"list", "--store", store, "--since", "1h", "--from", "2026-12-07"}, "[since from]"},
		{"a bad --from is named", []string{"list", "--store", store, "--from", "yesterday"}, `--from: time "yesterday"`},
		{"a missing store is named", []string{"list", "--store", filepath.Join(store, "nope")}, "does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := execute(t, newProfilesCmd(), tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("kprof profiles %v = %v, want an error containing %q", tc.args, err, tc.want)
			}
		})
	}
}

func TestProfilesListReadsWhatTheS3StoreWrote(t *testing.T) {
	m := testenv.StartMinIO(t)
	m.CreateBucket(t, "profiles")
	m.UseAsDefaultCredentials(t)
	st, err := s3.New(t.Context(), s3.Config{Bucket: "profiles", Endpoint: m.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	base := startSampleApp(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	data := fetchHeap(ctx, t, base)
	at := time.Date(2026, 12, 7, 14, 2, 3, 0, time.UTC)
	metas := []storage.Meta{
		{Namespace: "shop", Service: "checkout", Pod: "checkout-7d9", Type: "heap", Reason: "schedule", CapturedAt: at},
		{Namespace: "shop", Service: "checkout", Pod: "checkout-7d9", Type: "heap", Reason: "threshold: memory 91% of limit >= 80%",
			CapturedAt: at.Add(time.Minute)},
		{Namespace: "shop", Service: "<script>alert(1)</script>", Pod: "we\"ird\x1b[31m", Type: "heap", Reason: "manual", CapturedAt: at.Add(2 * time.Minute)},
	}
	var keys []string
	for _, meta := range metas {
		k := storage.RenderKey(storage.DefaultKeyTemplate, "prod", meta)
		if err := st.Put(ctx, k, data, meta); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, strings.TrimPrefix(k, "prod/"))
	}

	s3Args := []string{"--store", "s3://profiles/prod", "--s3-endpoint", m.Endpoint}
	stdout, stderr, err := execute(t, newProfilesCmd(), append([]string{"list", "-o", "wide", "--reason", "threshold"}, s3Args...)...)
	if err != nil {
		t.Fatalf("list: %v\n%s", err, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], keys[1]) || !strings.Contains(lines[1], "threshold: memory 91% of limit >= 80%") ||
		!strings.Contains(lines[1], "marker") {
		t.Fatalf("--reason threshold -o wide listed:\n%s\nwant the one threshold capture, its reason, read from its marker", stdout)
	}

	stdout, _, err = execute(t, newProfilesCmd(), append([]string{"list"}, s3Args...)...)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stdout, "\x1b") || !strings.Contains(stdout, "we\"ird?[31m") {
		t.Errorf("the table shows a pod name's terminal escape unescaped or not at all:\n%q", stdout)
	}

	stdout, _, err = execute(t, newProfilesCmd(), append([]string{"list", "-o", "json", "--from", "2026-12-07T14:02:30Z"}, s3Args...)...)
	if err != nil {
		t.Fatal(err)
	}
	var es []index.Entry
	if err := json.Unmarshal([]byte(stdout), &es); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		got = append(got, e.ID)
	}
	if !slices.Equal(got, keys[1:]) || es[1].Service != metas[2].Service || es[1].Trigger != index.TriggerManual {
		t.Fatalf("--from listed %+v, want %q", es, keys[1:])
	}

	out := filepath.Join(t.TempDir(), "heap.pb.gz")
	if _, stderr, err := execute(t, newProfilesCmd(), append([]string{"get", keys[0], "-o", out}, s3Args...)...); err != nil {
		t.Fatalf("get: %v\n%s", err, stderr)
	}
	if b, err := os.ReadFile(out); err != nil || string(b) != string(data) {
		t.Fatalf("get wrote %d bytes (%v), want the stored %d", len(b), err, len(data))
	}
}

// fetchHeap gets a heap profile from the pprof prefix base.
func fetchHeap(ctx context.Context, t *testing.T, base string) []byte {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/heap", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/heap: %s, %v", base, resp.Status, err)
	}
	return b
}
