package lifecycle

import (
	"context"
	"errors"
	"testing"
)

func TestGuard(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	type step struct {
		call    string // "start", "start-cancelled" or "shutdown"
		wantErr error  // of a start
		first   bool   // of a shutdown
	}
	for _, tc := range []struct {
		name                            string
		steps                           []step
		wantStarted, wantDown, wantRuns bool
	}{
		{"a new guard is neither started nor shut down", nil, false, false, false},
		{"the first start succeeds and the component runs",
			[]step{{call: "start"}}, true, false, true},
		{"a second start fails as already started",
			[]step{{call: "start"}, {call: "start", wantErr: ErrAlreadyStarted}}, true, false, true},
		{"a start with a done context fails with the context's error and records nothing",
			[]step{{call: "start-cancelled", wantErr: context.Canceled}, {call: "start"}}, true, false, true},
		{"a shutdown without start is the first and leaves the component not started",
			[]step{{call: "shutdown", first: true}}, false, true, false},
		{"a start after shutdown fails as shut down",
			[]step{{call: "shutdown", first: true}, {call: "start", wantErr: ErrShutDown}}, false, true, false},
		{"a second shutdown is not the first",
			[]step{{call: "start"}, {call: "shutdown", first: true}, {call: "shutdown", first: false}}, true, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var g Guard
			for i, s := range tc.steps {
				switch s.call {
				case "start", "start-cancelled":
					ctx := context.Background()
					if s.call == "start-cancelled" {
						ctx = cancelled
					}
					if err := g.Start(ctx); !errors.Is(err, s.wantErr) || (err == nil) != (s.wantErr == nil) {
						t.Fatalf("step %d: Start = %v, want %v", i, err, s.wantErr)
					}
				case "shutdown":
					if first := g.Shutdown(); first != s.first {
						t.Fatalf("step %d: Shutdown = %v, want %v", i, first, s.first)
					}
				}
			}
			if g.Started() != tc.wantStarted || g.ShutDown() != tc.wantDown || g.Running() != tc.wantRuns {
				t.Errorf("Started, ShutDown, Running = %v, %v, %v; want %v, %v, %v",
					g.Started(), g.ShutDown(), g.Running(), tc.wantStarted, tc.wantDown, tc.wantRuns)
			}
		})
	}
}
