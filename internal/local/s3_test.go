package local

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/logging/logtest"
	"github.com/kprof/kprof/internal/storage"
	"github.com/kprof/kprof/internal/testenv"
)

const (
	testBucket = "profiles"
	// profilesPerRound is what one scheduled round of the two targets of s3Config serves.
	profilesPerRound = 2 * 2
	// waitLong bounds each wait on a condition: rounds are 5s apart, MinIO restarts
	// in seconds and the spool retries within spoolMaxBackoff.
	waitLong = 2 * time.Minute
)

// s3Config is a config file capturing heap and goroutine profiles of two targets
// every five seconds into MinIO through a spool below the test's temp dir.
func s3Config(t *testing.T, m *testenv.MinIO, spoolDir string, targets ...*recordingTarget) Config {
	t.Helper()
	var b strings.Builder
	b.WriteString("targets:\n")
	for i, rt := range targets {
		fmt.Fprintf(&b, "  - {name: app-%d, url: %s}\n", i, rt.URL)
	}
	fmt.Fprintf(&b, `profileTypes: [heap, goroutine]
onDemand: {intervalSeconds: 5}
storage:
  s3: {bucket: %s, endpoint: %s, region: %s, usePathStyle: true}
  spool: {path: %s}
  prefix: outage
`, testBucket, m.Endpoint, m.Region, spoolDir)
	return writeConfig(t, b.String())
}

func TestScheduledRunDeliversEveryProfileExactlyOnceAcrossAnS3Outage(t *testing.T) {
	m := testenv.StartMinIO(t)
	m.CreateBucket(t, testBucket)
	m.UseAsDefaultCredentials(t)
	a, b := startRecordingTarget(t), startRecordingTarget(t)
	spoolDir := filepath.Join(t.TempDir(), "spool")
	var summary bytes.Buffer
	results := &resultLog{}
	r, err := NewRunner(RunnerConfig{
		File: s3Config(t, m, spoolDir, a, b), Logger: logtest.New(t), Out: &summary,
		FlushTimeout: waitLong, onResult: results.record,
	})
	if err != nil {
		t.Fatalf("NewRunner: %v", err)
	}
	stop, runDone := runInBackground(t, r)

	objects := func() int {
		sums, err := bucketSums(t.Context(), m, testBucket)
		if err != nil {
			t.Fatalf("read the bucket while MinIO is up: %v", err)
		}
		return len(sums)
	}
	waitFor(t, "two rounds in MinIO", waitLong, runDone, func() (bool, string) {
		n := objects()
		return n >= 2*profilesPerRound, fmt.Sprintf("%d objects", n)
	})

	m.Stop(t)
	servedAtOutage := len(servedBy(a, b))
	waitFor(t, "two more rounds served during the outage, held in the spool", waitLong, runDone, func() (bool, string) {
		served := len(servedBy(a, b))
		entries, _ := spoolEntries(t, spoolDir)
		return served >= servedAtOutage+2*profilesPerRound && entries > 0,
			fmt.Sprintf("%d served since the outage began, %d spooled", served-servedAtOutage, entries)
	})

	m.Start(t)
	servedAtRecovery := len(servedBy(a, b))
	waitFor(t, "one more round served after the recovery", waitLong, runDone, func() (bool, string) {
		served := len(servedBy(a, b))
		return served >= servedAtRecovery+profilesPerRound, fmt.Sprintf("%d served since the recovery", served-servedAtRecovery)
	})

	if err := stop(); err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	served := servedBy(a, b)
	sums, err := bucketSums(t.Context(), m, testBucket)
	if err != nil {
		t.Fatal(err)
	}
	ok, failed := results.counts()

	t.Run("every capture of the run succeeded, so every served profile was captured", func(t *testing.T) {
		if len(failed) > 0 {
			t.Fatalf("%d capture(s) failed:\n%s", len(failed), strings.Join(failed, "\n"))
		}
		if ok != len(served) {
			t.Fatalf("the engine captured %d profiles, the targets served %d", ok, len(served))
		}
	})
	t.Run("the bucket holds each served profile exactly once", func(t *testing.T) {
		if len(sums) != len(served) {
			t.Errorf("the bucket has %d objects, the targets served %d profiles", len(sums), len(served))
		}
		if got := sortedValues(sums); !slices.Equal(got, served) {
			t.Errorf("SHA-256 of the objects differ from those of the served profiles:\nobjects %v\nserved  %v", got, served)
		}
		for key := range sums {
			if !strings.HasPrefix(key, "outage/local/app-") {
				t.Errorf("object %s is not below the prefix outage/local/app-N/", key)
			}
		}
	})
	t.Run("the spool is empty at the end", func(t *testing.T) {
		if n, files := spoolEntries(t, spoolDir); len(files) > 0 {
			t.Errorf("the spool %s holds %d entries, files %v; want none", spoolDir, n, files)
		}
	})
	t.Run("the summary counts the uploads and says how to fetch one", func(t *testing.T) {
		out := summary.String()
		for _, want := range []string{
			fmt.Sprintf("Captured %d profile(s)", len(served)),
			fmt.Sprintf("uploaded %d to s3://%s/outage (endpoint %s)", len(served), testBucket, m.Endpoint),
			"aws s3 cp --endpoint-url " + m.Endpoint + " s3://" + testBucket + "/outage/local/app-",
			"&& go tool pprof -top ./",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("summary lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "still spooled") {
			t.Errorf("summary reports spooled profiles after a complete flush:\n%s", out)
		}
	})
}

func TestRunOnceWithS3DownFailsNamingTheProblemAndTheNextRunDeliversTheSpool(t *testing.T) {
	m := testenv.StartMinIO(t)
	m.CreateBucket(t, testBucket)
	m.UseAsDefaultCredentials(t)
	a, b := startRecordingTarget(t), startRecordingTarget(t)
	spoolDir := filepath.Join(t.TempDir(), "spool")
	cfg := s3Config(t, m, spoolDir, a, b)
	m.Stop(t)

	var firstSummary bytes.Buffer
	first, err := NewRunner(RunnerConfig{File: cfg, Once: true, Logger: logtest.New(t), Out: &firstSummary, FlushTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("NewRunner: %v", err)
	}
	runErr := first.Run(t.Context())
	servedFirst := servedBy(a, b)

	t.Run("a run while S3 is down fails, naming the store problem and the spool", func(t *testing.T) {
		if runErr == nil {
			t.Fatal("Run succeeded with MinIO stopped, want an error")
		}
		if k := storage.KindOf(runErr); k != storage.KindEndpointUnreachable {
			t.Errorf("storage.KindOf(Run error) = %q, want %q; error: %v", k, storage.KindEndpointUnreachable, runErr)
		}
		for _, want := range []string{
			fmt.Sprintf("%d profile(s) not uploaded", profilesPerRound), "store problem: EndpointUnreachable",
			spoolDir, "uploaded by the next kprof run",
		} {
			if !strings.Contains(runErr.Error(), want) {
				t.Errorf("Run error lacks %q: %v", want, runErr)
			}
		}
	})
	t.Run("the captured profiles stay in the spool and the summary says so", func(t *testing.T) {
		if len(servedFirst) != profilesPerRound {
			t.Fatalf("the targets served %d profiles, want %d", len(servedFirst), profilesPerRound)
		}
		if n, _ := spoolEntries(t, spoolDir); n != profilesPerRound {
			t.Errorf("the spool holds %d entries, want %d", n, profilesPerRound)
		}
		want := fmt.Sprintf("%d profile(s) still spooled in %s", profilesPerRound, spoolDir)
		if !strings.Contains(firstSummary.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, firstSummary.String())
		}
	})

	m.Start(t)
	var secondSummary bytes.Buffer
	second, err := NewRunner(RunnerConfig{File: cfg, Once: true, Logger: logtest.New(t), Out: &secondSummary, FlushTimeout: waitLong})
	if err != nil {
		t.Fatalf("NewRunner: %v", err)
	}
	if err := second.Run(t.Context()); err != nil {
		t.Fatalf("second Run with MinIO up: %v", err)
	}
	served := servedBy(a, b)
	sums, err := bucketSums(t.Context(), m, testBucket)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("the next run delivers the earlier profiles and its own, each exactly once", func(t *testing.T) {
		if len(served) != 2*profilesPerRound {
			t.Fatalf("the targets served %d profiles over both runs, want %d", len(served), 2*profilesPerRound)
		}
		if got := sortedValues(sums); !slices.Equal(got, served) {
			t.Errorf("SHA-256 of the %d objects differ from those of the %d served profiles:\nobjects %v\nserved  %v",
				len(sums), len(served), got, served)
		}
		if n, files := spoolEntries(t, spoolDir); len(files) > 0 {
			t.Errorf("the spool holds %d entries, files %v; want none", n, files)
		}
	})
	t.Run("the summary of the next run counts the earlier profiles apart", func(t *testing.T) {
		for _, want := range []string{
			fmt.Sprintf("uploaded %d to s3://%s/outage", profilesPerRound, testBucket),
			fmt.Sprintf("Also uploaded %d profile(s) an earlier run left in the spool.", profilesPerRound),
		} {
			if !strings.Contains(secondSummary.String(), want) {
				t.Errorf("summary lacks %q:\n%s", want, secondSummary.String())
			}
		}
	})
}

// TestRunWithS3ChecksTheBucketAndNamesAMissingOne runs once into a bucket that does
// not exist: the profiles stay spooled and the error says which bucket is missing.
func TestRunOnceIntoAMissingBucketNamesIt(t *testing.T) {
	m := testenv.StartMinIO(t)
	m.UseAsDefaultCredentials(t)
	a := startRecordingTarget(t)
	spoolDir := filepath.Join(t.TempDir(), "spool")
	r, err := NewRunner(RunnerConfig{File: s3Config(t, m, spoolDir, a), Once: true, Logger: logtest.New(t), FlushTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("NewRunner: %v", err)
	}
	err = r.Run(context.WithoutCancel(t.Context()))
	if k := storage.KindOf(err); k != storage.KindNoSuchBucket {
		t.Fatalf("storage.KindOf(Run error) = %q, want %q; error: %v", k, storage.KindNoSuchBucket, err)
	}
	if !strings.Contains(err.Error(), `bucket "`+testBucket+`" does not exist`) {
		t.Errorf("Run error does not name the missing bucket: %v", err)
	}
	if n, _ := spoolEntries(t, spoolDir); n != 2 {
		t.Errorf("the spool holds %d entries, want the 2 profiles of the run", n)
	}
}

func TestStoppingAScheduledRunWithS3(t *testing.T) {
	for _, tc := range []struct {
		name string
		// recover starts MinIO again just before the run is stopped.
		recover bool
	}{
		{"while S3 is down keeps the profiles in the spool and the summary says where", false},
		{"right after S3 came back uploads the spooled profiles before returning", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := testenv.StartMinIO(t)
			m.CreateBucket(t, testBucket)
			m.UseAsDefaultCredentials(t)
			rt := startRecordingTarget(t)
			spoolDir := filepath.Join(t.TempDir(), "spool")
			cfg := s3Config(t, m, spoolDir, rt)
			m.Stop(t)

			var summary bytes.Buffer
			flush := 2 * time.Second
			if tc.recover {
				flush = waitLong
			}
			r, err := NewRunner(RunnerConfig{File: cfg, Logger: logtest.New(t), Out: &summary, FlushTimeout: flush})
			if err != nil {
				t.Fatalf("NewRunner: %v", err)
			}
			stop, runDone := runInBackground(t, r)
			waitFor(t, "a round held in the spool", waitLong, runDone, func() (bool, string) {
				n, _ := spoolEntries(t, spoolDir)
				return n >= 2, fmt.Sprintf("%d spooled", n)
			})
			if tc.recover {
				m.Start(t)
			}
			if err := stop(); err != nil {
				t.Fatalf("Run after cancel = %v, want nil: a stopped run keeps what it could not upload", err)
			}
			served := servedBy(rt)
			entries, files := spoolEntries(t, spoolDir)

			if !tc.recover {
				if entries != len(served) {
					t.Errorf("the spool holds %d entries, the target served %d profiles", entries, len(served))
				}
				want := fmt.Sprintf("%d profile(s) still spooled in %s; they are uploaded by the next kprof run with the same spool", entries, spoolDir)
				if !strings.Contains(summary.String(), want) {
					t.Errorf("summary lacks %q:\n%s", want, summary.String())
				}
				return
			}
			sums, err := bucketSums(t.Context(), m, testBucket)
			if err != nil {
				t.Fatal(err)
			}
			if got := sortedValues(sums); !slices.Equal(got, served) {
				t.Errorf("SHA-256 of the %d objects differ from those of the %d served profiles:\nobjects %v\nserved  %v",
					len(sums), len(served), got, served)
			}
			if len(files) > 0 {
				t.Errorf("the spool holds %d entries, files %v; want none", entries, files)
			}
			if strings.Contains(summary.String(), "still spooled") {
				t.Errorf("summary reports spooled profiles after a complete flush:\n%s", summary.String())
			}
		})
	}
}
