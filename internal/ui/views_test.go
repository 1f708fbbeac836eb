package ui_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/storage"
	"github.com/kprof/kprof/internal/ui"
)

// TestMergeAndDiffViewsAnswerWithStatus checks the statuses and messages of the merge
// and diff views, their limits, and that a hostile service name in a diff's error is text.
func TestMergeAndDiffViewsAnswerWithStatus(t *testing.T) {
	base, cpu, heap := sampleAppProfiles(t)
	be := dirBackend(t)
	now := time.Now().UTC()
	put := func(data []byte, m storage.Meta) string {
		k := storage.RenderKey(storage.DefaultKeyTemplate, "", m)
		if err := be.store.Put(t.Context(), k, data, m); err != nil {
			t.Fatal(err)
		}
		return k
	}
	meta := func(service, reason string, ago time.Duration) storage.Meta {
		return storage.Meta{Namespace: "shop", Service: service, Pod: "p-1", Type: "cpu", Duration: 2 * time.Second, Reason: reason, CapturedAt: now.Add(-ago)}
	}
	put(base, meta("checkout", "schedule", 50*time.Minute))
	scheduled := put(base, meta("checkout", "schedule", 30*time.Minute))
	spike := put(cpu, meta("checkout", "threshold: cpu 93% of request >= 80%", 10*time.Minute))
	lonely := put(cpu, meta(evilService, "threshold: cpu 95%", 5*time.Minute))
	// Two "cpu" profiles of which one holds a heap profile: a merge names what differs.
	put(cpu, meta("mixed", "schedule", 20*time.Minute))
	put(heap, meta("mixed", "schedule", 15*time.Minute))

	serve := func(cfg ui.Config) *httptest.Server {
		cfg.Index, cfg.Logger, cfg.LocalFiles = be.index(t), slog.New(slog.DiscardHandler), true
		h, err := ui.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return srv
	}
	srv := serve(ui.Config{})
	hc := &http.Client{Timeout: time.Minute, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(srv *httptest.Server, path string) (int, string, string) {
		t.Helper()
		resp, err := hc.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, resp.Header.Get("Location"), string(b)
	}

	status, loc, _ := get(srv, "/merge/?service=checkout&type=cpu&since=2h")
	if status != http.StatusSeeOther || !strings.HasPrefix(loc, ui.MergePrefix) || !strings.HasSuffix(loc, "/-/flamegraph") {
		t.Fatalf("GET /merge/?service=checkout&type=cpu&since=2h: %d to %q, want 303 to the merged flame graph", status, loc)
	}
	for _, tc := range []struct {
		path string
		want int
		text string
	}{
		{loc, http.StatusOK, "burnCPU"},
		{strings.TrimSuffix(loc, "flamegraph") + "top", http.StatusOK, "burnCPU"},
		{strings.TrimSuffix(loc, "flamegraph") + "nosuchview", http.StatusNotFound, "pprof has no view"},
		{"/merge/?service=checkout", http.StatusBadRequest, "the 3 profiles that match service=checkout are of the types cpu"},
		{"/merge/?type=cpu&since=soon", http.StatusBadRequest, `since &#34;soon&#34;`},
		{"/merge/service=nobody&type=cpu/-/flamegraph", http.StatusNotFound, "match service=nobody,type=cpu"},
		{"/merge/service=checkout/-/flamegraph", http.StatusBadRequest, "type: required"},
		{ui.DiffURL(spike), http.StatusOK, "burnCPU"},
		{ui.DiffURL(spike) + "/-/top", http.StatusOK, "burnCPU"},
		{ui.DiffURL(spike) + "/-/nosuchview", http.StatusNotFound, "pprof has no view"},
		{ui.DiffURL(scheduled), http.StatusBadRequest, "is not a threshold capture (trigger schedule)"},
		{ui.DiffURL(lonely), http.StatusNotFound, "no scheduled cpu profiles of shop/&lt;script&gt;alert(1)&lt;/script&gt; in the hour before the threshold capture"},
		{"/merge/service=mixed&type=cpu/-/flamegraph", http.StatusUnprocessableEntity, "sample types differ"},
		{"/diff/..%2F..%2Fetc%2Fpasswd", http.StatusBadRequest, "invalid profile ID"},
		{"/diff/shop/nothing.pb.gz", http.StatusNotFound, "no such profile"},
	} {
		status, _, body := get(srv, tc.path)
		if status != tc.want || !strings.Contains(body, tc.text) {
			t.Errorf("GET %s: %d, want %d with %q:\n%.600s", tc.path, status, tc.want, tc.text, body)
		}
		if strings.Contains(body, evilService) {
			t.Errorf("GET %s: the page holds the service name %q unescaped", tc.path, evilService)
		}
	}

	t.Run("a merge or diff over MaxMergeProfiles is refused with the limit", func(t *testing.T) {
		small := serve(ui.Config{MaxMergeProfiles: 1})
		for _, path := range []string{"/merge/service=checkout&type=cpu/-/flamegraph", ui.DiffURL(spike)} {
			status, _, body := get(small, path)
			if status != http.StatusRequestEntityTooLarge || !strings.Contains(body, "above the limit of 1 (MaxInputs); select fewer or smaller profiles or raise the limit (kprof ui --max-merge-profiles)") {
				t.Errorf("GET %s with MaxMergeProfiles 1: %d, want 413 naming the limit:\n%.600s", path, status, body)
			}
		}
	})
	t.Run("a profile over MaxProfileBytes in a merge is refused with the limit", func(t *testing.T) {
		small := serve(ui.Config{MaxProfileBytes: 64})
		status, _, body := get(small, "/merge/service=checkout&type=cpu/-/flamegraph")
		if status != http.StatusRequestEntityTooLarge || !strings.Contains(body, "(MaxFileBytes); select fewer or smaller profiles or raise the limit (kprof ui --max-bytes)") {
			t.Errorf("GET a merge with MaxProfileBytes 64: %d, want 413 naming the limit:\n%.600s", status, body)
		}
	})
}
