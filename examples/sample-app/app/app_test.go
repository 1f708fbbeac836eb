package app

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/pprof/profile"
)

func newTestServer(t *testing.T) *httptest.Server {
	t.Helper()
	a, err := New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

func TestHealthz(t *testing.T) {
	srv := newTestServer(t)
	code, body := get(t, srv.URL+"/healthz")
	if code != http.StatusOK || strings.TrimSpace(body) != "ok" {
		t.Fatalf("GET /healthz = %d %q, want 200 \"ok\"", code, body)
	}
}

func TestLoadRejectsBadInput(t *testing.T) {
	srv := newTestServer(t)
	for _, tc := range []struct {
		name, query, wantMsg string
	}{
		{"a request without cpu or mem is rejected", "", "want cpu=DURATION"},
		{"an unknown parameter is named", "cpus=1s", `unknown parameter "cpus"`},
		{"a duration that does not parse is rejected", "cpu=ten", "cpu: must be a duration"},
		{"a cpu duration over ten minutes is rejected", "cpu=11m", "cpu: must be greater than 0 and at most 10m0s"},
		{"a negative cpu duration is rejected", "cpu=-1s", "cpu: must be greater than 0"},
		{"zero workers are rejected", "cpu=1s&workers=0", "workers: must be an integer from 1 to 64"},
		{"more than 64 workers are rejected", "cpu=1s&workers=65", "workers: must be an integer from 1 to 64"},
		{"workers without cpu are rejected", "workers=2", "workers: only valid together with cpu"},
		{"memory over 2GiB is rejected", "mem=3GiB", "mem: must be from 1 byte to 2GiB"},
		{"a huge byte count does not overflow", "mem=9223372036854775807GiB", "mem: must be a byte count"},
		{"memory that does not parse is rejected", "mem=lots", "mem: must be a byte count"},
		{"hold without mem is rejected", "hold=1s", "hold: only valid together with mem"},
		{"a hold over ten minutes is rejected", "mem=1MiB&hold=1h", "hold: must be greater than 0 and at most 10m0s"},
		{"a repeated parameter is rejected", "cpu=1s&cpu=2s", "cpu: given 2 times"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, srv.URL+"/load?"+tc.query)
			if code != http.StatusBadRequest {
				t.Fatalf("GET /load?%s = %d, want 400", tc.query, code)
			}
			if !strings.Contains(body, tc.wantMsg) {
				t.Fatalf("GET /load?%s body = %q, want it to contain %q", tc.query, body, tc.wantMsg)
			}
		})
	}
}

func TestLoadAcceptsBoundedInput(t *testing.T) {
	for _, tc := range []struct {
		name  string
		query string
		want  loadRequest
	}{
		{"cpu defaults to one worker", "cpu=10m", loadRequest{cpu: MaxLoadDuration, workers: 1, hold: defaultHold}},
		{"the maximum worker count is accepted", "cpu=1s&workers=64", loadRequest{cpu: 1e9, workers: 64, hold: defaultHold}},
		{"2GiB of memory is accepted", "mem=2GiB&hold=10m", loadRequest{workers: 1, mem: 2 << 30, hold: MaxLoadDuration}},
		{"a plain byte count is accepted", "mem=1048576", loadRequest{workers: 1, mem: 1 << 20, hold: defaultHold}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseLoadRequest(q)
			if err != nil {
				t.Fatalf("parseLoadRequest(%q): %v", tc.query, err)
			}
			if got != tc.want {
				t.Fatalf("parseLoadRequest(%q) = %+v, want %+v", tc.query, got, tc.want)
			}
		})
	}
}

func TestMemoryBudgetIsSharedByConcurrentRequests(t *testing.T) {
	var a App
	if !a.reserveMemory(MaxMemoryBytes) {
		t.Fatal("reserving the whole budget from empty failed")
	}
	if a.reserveMemory(1) {
		t.Fatal("reserving one byte beyond the budget succeeded")
	}
	a.heldBytes.Add(-MaxMemoryBytes)
	if !a.reserveMemory(1) {
		t.Fatal("reserving after release failed")
	}
}

// startLoad starts /load?query and returns once the server reports the load running;
// the load stops when the test ends.
func startLoad(t *testing.T, srv *httptest.Server, query string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/load?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("GET /load?%s: %v", query, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /load?%s = %d, want 200", query, resp.StatusCode)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "started") {
		t.Fatalf("GET /load?%s first line = %q, %v; want \"started ...\"", query, line, err)
	}
}

func fetchProfile(t *testing.T, url string) *profile.Profile {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d, want 200", url, resp.StatusCode)
	}
	p, err := profile.Parse(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		t.Fatalf("parse profile from %s: %v", url, err)
	}
	return p
}

func profileNames(p *profile.Profile, fn string) bool {
	for _, s := range p.Sample {
		for _, loc := range s.Location {
			for _, l := range loc.Line {
				if l.Function != nil && strings.HasSuffix(l.Function.Name, "."+fn) {
					return true
				}
			}
		}
	}
	return false
}

func TestProfilesNameTheLoadFunctions(t *testing.T) {
	for _, tc := range []struct {
		name, load, profilePath, wantFunc string
	}{
		{"a CPU profile taken during cpu load names burnCPU", "cpu=10m&workers=2", "/debug/pprof/profile?seconds=1", "burnCPU"},
		{"a heap profile taken while memory is held names allocateMemory", "mem=64MiB&hold=10m", "/debug/pprof/heap?gc=1", "allocateMemory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newTestServer(t)
			startLoad(t, srv, tc.load)
			p := fetchProfile(t, srv.URL+tc.profilePath)
			if !profileNames(p, tc.wantFunc) {
				t.Fatalf("profile from %s has %d samples, none in %s", tc.profilePath, len(p.Sample), tc.wantFunc)
			}
		})
	}
}

func TestServeShutsDownGracefullyAndStopsLoad(t *testing.T) {
	a, err := New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var serveErr error
	served := make(chan struct{})
	go func() { serveErr = a.Serve(ctx, ln); close(served) }()
	t.Cleanup(func() { cancel(); <-served })

	resp, err := http.Get("http://" + ln.Addr().String() + "/load?cpu=10m")
	if err != nil {
		t.Fatalf("GET /load: %v", err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "started") {
		t.Fatalf("GET /load first line = %q, %v", line, err)
	}

	cancel() // as on SIGTERM: the ten-minute load must not hold the shutdown
	<-served
	if serveErr != nil {
		t.Fatalf("Serve after cancel = %v, want nil (load stopped, shutdown within the timeout)", serveErr)
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/healthz"); err == nil {
		t.Fatal("server still answers after shutdown")
	}
}
