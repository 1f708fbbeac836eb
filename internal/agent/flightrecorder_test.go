package agent

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/flight"
)

// The flight recorder's endpoint says why it cannot answer: no cluster (no
// sample is attributed to a pod), the recorder disabled, no token. No
// collector runs: these answers come before any sample is needed.
func TestTheFlightEndpointSaysWhyItCannotAnswer(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("t0k3n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	start := func(t *testing.T, cfg Config) *Agent {
		cfg.ConfigDir, cfg.NoDefault, cfg.NoCluster, cfg.NodeName = t.TempDir(), true, true, "node-a"
		cfg.MetricsAddr, cfg.HealthAddr, cfg.RecorderAddr = "0", "0", "127.0.0.1:0"
		a, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := a.Shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
		})
		return a
	}
	fetch := func(t *testing.T, a *Agent) error {
		c := &flight.Client{Token: func(context.Context) (string, error) { return "t0k3n", nil }}
		now := time.Now()
		_, err := c.Fetch(t.Context(), "http://"+a.RecorderAddr(), flight.Request{Namespace: "shop", Pod: "web-0", From: now.Add(-time.Second), To: now})
		return err
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"an agent without a cluster attributes no sample to a pod", Config{RecorderWindow: time.Minute, RecorderTokenFile: tokenFile},
			"agent on node node-a runs without a cluster: no sample is attributed to a pod"},
		{"an agent without a recorder says it is disabled", Config{RecorderTokenFile: tokenFile},
			"the flight recorder is disabled on node node-a (--recorder-window=0)"},
		{"an agent without a token refuses every request", Config{RecorderWindow: time.Minute, RecorderTokenFile: filepath.Join(t.TempDir(), "none")},
			"no recorder token configured"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := start(t, tc.cfg)
			var se *flight.StatusError
			if err := fetch(t, a); !errors.As(err, &se) || se.Code != http.StatusServiceUnavailable || !strings.Contains(se.Message, tc.want) {
				t.Errorf("err = %v, want 503 %q", err, tc.want)
			}
			if (tc.cfg.RecorderWindow > 0) != (a.Recorder() != nil) {
				t.Errorf("Recorder() = %v with window %s", a.Recorder(), tc.cfg.RecorderWindow)
			}
		})
	}
}
