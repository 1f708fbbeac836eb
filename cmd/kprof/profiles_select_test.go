package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/profdiff"
	"github.com/kprof/kprof/internal/storage"
	"github.com/kprof/kprof/internal/storage/fs"
	"github.com/kprof/kprof/internal/storage/s3"
	"github.com/kprof/kprof/internal/testenv"
)

// fetchPprof gets base+path, a profile of the sample app, within a minute.
func fetchPprof(t *testing.T, base, path string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v", path, resp.Status, err)
	}
	return b
}

// spikeProfile captures 2 s CPU profiles of the app during a /load burn until one
// spends at least twice the CPU per second in burnCPU that the busier baseline does:
// on a loaded machine (other test runs, stress-ng) a capture can get too little CPU to
// record a spike.
func spikeProfile(t *testing.T, app string, baselines ...[]byte) []byte {
	t.Helper()
	var base float64
	for _, b := range baselines {
		r, err := testenv.CPURate(b, ".burnCPU")
		if err != nil {
			t.Fatal(err)
		}
		base = max(base, r)
	}
	loadSpike(t, app, "cpu=5m&workers=2")
	var spike []byte
	testenv.Eventually(t, 3*time.Minute, func() (bool, string) {
		spike = fetchPprof(t, app, "/profile?seconds=2")
		r, err := testenv.CPURate(spike, ".burnCPU")
		if err != nil {
			t.Fatal(err)
		}
		return r > 0 && r >= 2*base, fmt.Sprintf("the capture during /load spends %.0f ms/s in burnCPU, the baseline %.0f ms/s: no spike yet", r*1e3, base*1e3)
	})
	return spike
}

func TestProfilesMergeAndDiffSelectFromTheStore(t *testing.T) {
	app := startSampleApp(t)
	// Baseline: the background load only. Spike: during /load, as a threshold capture records it.
	base1, base2 := fetchPprof(t, app, "/profile?seconds=1"), fetchPprof(t, app, "/profile?seconds=1")
	heap := fetchPprof(t, app, "/heap")
	spike := spikeProfile(t, app, base1, base2)

	at := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Second)
	meta := func(service, typ, reason string, minutes int) storage.Meta {
		m := storage.Meta{Namespace: "shop", Service: service, Pod: service + "-7d9", Type: typ, Reason: reason,
			CapturedAt: at.Add(time.Duration(minutes) * time.Minute)}
		if typ == "cpu" {
			m.Duration = time.Second
		}
		return m
	}
	const threshold = "threshold: cpu 93% of request >= 80%"

	dir := t.TempDir()
	fst, err := fs.New(fs.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	m := testenv.StartMinIO(t)
	m.CreateBucket(t, "profiles")
	m.UseAsDefaultCredentials(t)
	sst, err := s3.New(t.Context(), s3.Config{Bucket: "profiles", Endpoint: m.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	for _, be := range []struct {
		name   string
		st     storage.Store
		prefix string
		args   []string
	}{
		{"local store", fst, "", []string{"--store", dir}},
		{"MinIO", sst, "prod", []string{"--store", "s3://profiles/prod", "--s3-endpoint", m.Endpoint}},
	} {
		t.Run(be.name, func(t *testing.T) {
			put := func(data []byte, m storage.Meta) string {
				k := storage.RenderKey(storage.DefaultKeyTemplate, be.prefix, m)
				if err := be.st.Put(t.Context(), k, data, m); err != nil {
					t.Fatal(err)
				}
				return strings.TrimPrefix(k, be.prefix+"/")
			}
			put(base1, meta("checkout", "cpu", "schedule", -40))
			put(base2, meta("checkout", "cpu", "schedule", -20))
			heapID := put(heap, meta("checkout", "heap", "schedule", -30))
			scheduled := put(base1, meta("payments", "cpu", "schedule", -10))
			spikeID := put(spike, meta("checkout", "cpu", threshold, 0))
			lonely := put(spike, meta("cart", "cpu", threshold, 0))

			run := func(args ...string) (string, error) {
				t.Helper()
				stdout, _, err := execute(t, newProfilesCmd(), append(args, be.args...)...)
				return stdout, err
			}
			out := func() string { return filepath.Join(t.TempDir(), "out.pb.gz") }
			for _, tc := range []struct {
				name string
				args []string
				want string
			}{
				{"merge by the filter flags merges the service's profiles of the type", []string{"merge", "--service", "checkout", "--type", "cpu", "--since", "24h", "-o", out()},
					"Merged 3 cpu profile(s)"},
				{"merge by a selector merges what it matches", []string{"merge", "service=checkout,reason=schedule,type=cpu", "-o", out()},
					"Merged 2 cpu profile(s)"},
				{"the filter flags fill in what a selector leaves out", []string{"merge", "reason=schedule", "--service", "checkout", "--type", "cpu", "-o", out()},
					"Merged 2 cpu profile(s)"},
				{"merge of an ID merges that profile", []string{"merge", heapID, "-o", out()}, "Merged 1 heap profile(s)"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					stdout, err := run(tc.args...)
					if err != nil || !strings.Contains(stdout, tc.want) {
						t.Fatalf("kprof profiles %v: %v\n%s\nwant %q", tc.args, err, stdout, tc.want)
					}
				})
			}

			t.Run("diff of a threshold capture without --base says its default base and names burnCPU as grown", func(t *testing.T) {
				o := out()
				// By cumulative change: on a busy machine burnCPU's own samples may land in
				// runtime.asyncPreempt, which it calls.
				stdout, err := run("diff", "--target", spikeID, "--sort", "cum", "--top", "10", "-o", o)
				if err != nil {
					t.Fatalf("diff: %v\n%s", err, stdout)
				}
				want := "base: 2 scheduled cpu profiles of shop/checkout captured from " + at.Add(-40*time.Minute).Format(time.RFC3339) +
					" to " + at.Add(-20*time.Minute).Format(time.RFC3339) + ", in the hour before the threshold capture at " + at.Format(time.RFC3339)
				if !strings.HasPrefix(stdout, want+"\n") {
					t.Errorf("diff output does not start with %q:\n%s", want, stdout)
				}
				grew, _, _ := strings.Cut(stdout, "shrank most")
				if !strings.Contains(grew, "per second (base: 2 profiles") || !strings.Contains(grew, spikeFunction) {
					t.Errorf("the grew section does not list %s against 2 base profiles:\n%s", spikeFunction, stdout)
				}
				if _, err := profdiff.ReadProfile(o, profdiff.DefaultMaxFileBytes); err != nil {
					t.Errorf("diff profile: %v", err)
				}
			})
			t.Run("diff of selectors refined by the filter flags", func(t *testing.T) {
				stdout, err := run("diff", "--service", "checkout", "--type", "cpu", "--base", "reason=schedule", "--target", "reason=threshold,since=24h", "--sort", "cum", "--top", "10")
				if err != nil {
					t.Fatalf("diff: %v\n%s", err, stdout)
				}
				grew, _, _ := strings.Cut(stdout, "shrank most")
				if !strings.Contains(grew, "(base: 2 profiles") || !strings.Contains(grew, "target: 1 profile,") || !strings.Contains(grew, spikeFunction) {
					t.Errorf("diff of 2 scheduled against 1 threshold profile does not list %s as grown:\n%s", spikeFunction, stdout)
				}
			})

			for _, tc := range []struct {
				name string
				args []string
				want string
			}{
				{"merge of a selection of two types names them", []string{"merge", "--service", "checkout", "-o", out()},
					"are of 2 types (cpu, heap): choose one with type (--type or type=)"},
				{"a selector's unknown key is named", []string{"merge", "service=checkout,colour=red", "-o", out()}, `unknown key "colour"`},
				{"a selection of nothing names the filter", []string{"merge", "service=nobody,type=cpu", "-o", out()}, "match service=nobody,type=cpu"},
				{"an ID that is not in the store is named", []string{"merge", "shop/none.pb.gz", "-o", out()},
					"shop/none.pb.gz: no such file or directory here, and no profile with this ID in"},
				{"an ID of another type than --type is named", []string{"merge", heapID, "--type", "cpu", "-o", out()}, "a heap profile, not cpu (--type)"},
				{"diff without --base of a scheduled capture is refused", []string{"diff", "--target", scheduled},
					"--base: " + scheduled + " is not a threshold capture (trigger schedule)"},
				{"diff without --base of several profiles is refused", []string{"diff", "--target", "type=cpu,reason=schedule"},
					"--base: required, unless --target names one threshold capture"},
				{"diff without --base of a service without scheduled profiles names it and the hour", []string{"diff", "--target", lonely},
					"no scheduled cpu profiles of shop/cart in the hour before the threshold capture at " + at.Format(time.RFC3339) +
						" (from " + at.Add(-time.Hour).Format(time.RFC3339) + " to " + at.Format(time.RFC3339) + ")"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					_, err := run(tc.args...)
					if err == nil || !strings.Contains(err.Error(), tc.want) {
						t.Fatalf("kprof profiles %v = %v, want an error containing %q", tc.args, err, tc.want)
					}
				})
			}
		})
	}

	t.Run("filter flags without a store selection are refused, not ignored", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "heap.pb.gz")
		if err := os.WriteFile(f, heap, 0o644); err != nil {
			t.Fatal(err)
		}
		_, _, err := execute(t, newProfilesCmd(), "merge", f, "--service", "checkout", "--since", "1h", "-o", filepath.Join(t.TempDir(), "x"))
		if err == nil || !strings.Contains(err.Error(), "--service, --since: these filters select profiles of --store") {
			t.Fatalf("merge FILE --service = %v, want the filter flags refused", err)
		}
	})
}
