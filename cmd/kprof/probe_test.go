package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/readyz":
			_, _ = w.Write([]byte("ok"))
		case "/slow":
			<-r.Context().Done()
		default:
			http.Error(w, "<html><body>\n  <h1>broken</h1>\n</body></html>", http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	// A port nothing listens on: the kernel's, closed again.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String() + "/readyz"
	l.Close()

	t.Run("a 2xx answer succeeds and prints the status", func(t *testing.T) {
		out, _, err := execute(t, newProbeCmd(), srv.URL+"/readyz")
		if err != nil || !strings.Contains(out, "200 OK") {
			t.Fatalf("kprof probe /readyz: out %q, err %v", out, err)
		}
	})
	fails := []struct {
		name string
		args []string
		want []string
	}{
		{"a 5xx answer fails with its status and the body on one line", []string{srv.URL + "/broken"},
			[]string{"503 Service Unavailable", "<html><body> <h1>broken</h1> </body></html>"}},
		{"no answer within --timeout fails naming the timeout", []string{"--timeout", "200ms", srv.URL + "/slow"},
			[]string{"no answer within --timeout 200ms"}},
		{"a refused connection fails", []string{closed}, []string{"connection refused"}},
		{"a URL that is not http fails naming it", []string{"ftp://example.com/x"}, []string{`"ftp://example.com/x"`, "http://"}},
		{"a zero timeout is refused", []string{"--timeout", "0s", srv.URL + "/readyz"}, []string{"--timeout 0s: must be positive"}},
	}
	for _, tc := range fails {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := execute(t, newProbeCmd(), tc.args...)
			if err == nil {
				t.Fatalf("kprof probe %v succeeded", tc.args)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("kprof probe %v: error %q lacks %q", tc.args, err, w)
				}
			}
		})
	}
	t.Run("the command is hidden from kprof --help", func(t *testing.T) {
		if !newProbeCmd().Hidden {
			t.Error("kprof probe is listed in --help; it is plumbing for the chart's helm test")
		}
	})
}
