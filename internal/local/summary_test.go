package local

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kprof/kprof/internal/capture"
)

func TestRemoteSummary(t *testing.T) {
	r := &spooledS3{bucket: "profiles", endpoint: "http://127.0.0.1:9000", dir: "/var/spool/kprof"}
	const heapURL = "s3://profiles/dev/local/app/2026-01-02/20260102T030405.000Z_app_heap.pb.gz"
	for _, tc := range []struct {
		name         string
		tally        tally
		want, reject []string
	}{
		{"a complete upload names the bucket, the endpoint and how to fetch the latest profile", tally{
			stored: 3, bytes: 3 << 10, uploaded: 3,
			latest: map[capture.ProfileType]string{capture.TypeHeap: heapURL},
		}, []string{
			"Captured 3 profile(s), 3.0 KiB; uploaded 3 to s3://profiles/dev (endpoint http://127.0.0.1:9000)",
			"  heap         " + heapURL,
			"aws s3 cp --endpoint-url http://127.0.0.1:9000 " + heapURL + " ./20260102T030405.000Z_app_heap.pb.gz && go tool pprof -top ./20260102T030405.000Z_app_heap.pb.gz",
		}, []string{"still spooled", "evicted", "earlier run"}},
		{"leftovers, evictions and earlier profiles are each reported", tally{
			stored: 5, uploaded: 1, uploadedEarlier: 2, pending: 4, failed: 1,
			evicted: map[string]int{"max-bytes": 2, "max-age": 1},
			latest:  map[capture.ProfileType]string{capture.TypeHeap: heapURL},
		}, []string{
			"uploaded 1 to s3://profiles/dev", "; 1 capture(s) failed",
			"Also uploaded 2 profile(s) an earlier run left in the spool.",
			"3 profile(s) were evicted from the spool without upload (max-age: 1, max-bytes: 2).",
			"4 profile(s) still spooled in /var/spool/kprof; they are uploaded by the next kprof run with the same spool",
		}, nil},
		{"nothing uploaded prints no fetch command", tally{stored: 2, pending: 2}, []string{"2 profile(s) still spooled"},
			[]string{"aws s3 cp", "Latest of each type"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			writeRemoteSummary(&b, "s3://profiles/dev", r, tc.tally)
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("summary lacks %q:\n%s", w, b.String())
				}
			}
			for _, w := range tc.reject {
				if strings.Contains(b.String(), w) {
					t.Errorf("summary has %q:\n%s", w, b.String())
				}
			}
		})
	}
}
