package operator_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/pprof/profile"

	"github.com/kprof/kprof/internal/operator"
)

func TestPprofHandlersServeTheOperatorsOwnProfiles(t *testing.T) {
	mux := http.NewServeMux()
	for path, h := range operator.PprofHandlers() {
		mux.Handle(path, h)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	get := func(t *testing.T, path string) []byte {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s\n%s", path, resp.Status, b)
		}
		return b
	}
	for _, path := range []string{"/debug/pprof/heap", "/debug/pprof/goroutine", "/debug/pprof/profile?seconds=1"} {
		t.Run(path+" is a pprof profile", func(t *testing.T) {
			b := get(t, path)
			if zr, err := gzip.NewReader(bytes.NewReader(b)); err == nil {
				if b, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			}
			p, err := profile.ParseData(b)
			if err != nil {
				t.Fatalf("GET %s: not pprof: %v", path, err)
			}
			if len(p.SampleType) == 0 {
				t.Errorf("GET %s: a profile without sample types", path)
			}
		})
	}
	t.Run("the index lists the profiles", func(t *testing.T) {
		if b := get(t, "/debug/pprof/"); !bytes.Contains(b, []byte("goroutine")) {
			t.Errorf("the index does not list goroutine:\n%.500s", b)
		}
	})
}
