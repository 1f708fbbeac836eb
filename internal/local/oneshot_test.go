package local

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/capture"
	"github.com/kprof/kprof/internal/logging/logtest"
)

func TestCaptureOne(t *testing.T) {
	base := startSampleApp(t)
	for _, tc := range []struct {
		name  string
		types []capture.ProfileType
	}{
		{"cpu first draws a progress bar from the start and stores both files", []capture.ProfileType{capture.TypeCPU, capture.TypeHeap}},
		{"cpu after heap draws a progress bar once heap is done", []capture.ProfileType{capture.TypeHeap, capture.TypeCPU}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target, err := URLTarget(base+"/", "checkout")
			if err != nil {
				t.Fatalf("URLTarget: %v", err)
			}
			dir := filepath.Join(t.TempDir(), "out")
			var progress, out bytes.Buffer
			err = CaptureOne(t.Context(), CaptureOneConfig{
				Target: target, Types: tc.types, CPUDuration: time.Second, Dir: dir,
				Terminal: true, Progress: &progress, Logger: logtest.New(t), Out: &out,
			})
			if err != nil {
				t.Fatalf("CaptureOne: %v", err)
			}
			files := storedProfiles(t, dir)
			for _, typ := range tc.types {
				if len(files[string(typ)]) != 1 {
					t.Fatalf("stored %v, want one %s profile", files, typ)
				}
				parseProfileFile(t, files[string(typ)][0])
				if !strings.Contains(out.String(), files[string(typ)][0]) {
					t.Errorf("output does not print %s:\n%s", files[string(typ)][0], out.String())
				}
			}
			if !strings.Contains(files["cpu"][0], filepath.Join("local", "checkout")) {
				t.Errorf("cpu profile %s is not below local/checkout/", files["cpu"][0])
			}
			if !strings.HasPrefix(progress.String(), "\rcpu [....................] 0s/1s") ||
				!strings.HasSuffix(progress.String(), "\x1b[K\n") || strings.Count(progress.String(), "\n") != 1 {
				t.Errorf("progress = %q, want a bar from 0s/1s ending in one newline", progress.String())
			}
		})
	}
}

func TestCaptureOneReportsAnUnreachableTarget(t *testing.T) {
	target, err := URLTarget(closedPortURL(t), "")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = CaptureOne(t.Context(), CaptureOneConfig{
		Target: target, Types: []capture.ProfileType{capture.TypeGoroutine}, Dir: t.TempDir(), Logger: logtest.New(t), Out: &out,
	})
	if err == nil || !strings.Contains(err.Error(), "ConnectFailed") {
		t.Fatalf("CaptureOne = %v, want a ConnectFailed error", err)
	}
	if !strings.Contains(out.String(), "Stored 0 profile(s)") {
		t.Errorf("output = %q, want it to say nothing was stored", out.String())
	}
}

func TestCaptureOneConfigRejectsBadFields(t *testing.T) {
	ok := capture.Target{BaseURL: "http://127.0.0.1:1/debug/pprof"}
	for _, tc := range []struct {
		name string
		cfg  CaptureOneConfig
		want string
	}{
		{"a target without a URL is rejected", CaptureOneConfig{}, "Target.BaseURL: must be an http(s) URL"},
		{"an unknown type is named", CaptureOneConfig{Target: ok, Types: []capture.ProfileType{"cpux"}}, `Types[0]: unknown profile type "cpux"`},
		{"a repeated type is named", CaptureOneConfig{Target: ok, Types: []capture.ProfileType{"heap", "heap"}}, `Types[1]: duplicate "heap" (also Types[0])`},
		{"a fractional CPU duration is rejected", CaptureOneConfig{Target: ok, CPUDuration: 1500 * time.Millisecond}, "CPUDuration: must be whole seconds"},
		{"a terminal bar without a writer is rejected", CaptureOneConfig{Target: ok, Terminal: true}, "Progress: required with Terminal"},
		{"a bad limit is named", CaptureOneConfig{Target: ok, Limits: LimitsConfig{MaxConcurrent: 1000}}, "Limits.maxConcurrent: must be from 1 to 64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.SetDefaults()
			if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestURLTarget(t *testing.T) {
	for _, tc := range []struct {
		name, raw, service, wantBase, wantService string
	}{
		{"a pprof prefix is used as is", "http://127.0.0.1:6060/debug/pprof", "", "http://127.0.0.1:6060/debug/pprof", "127.0.0.1"},
		{"a prefix ending in a slash is trimmed", "http://127.0.0.1:6060/debug/pprof/", "api", "http://127.0.0.1:6060/debug/pprof", "api"},
		{"a URL without a path gets /debug/pprof", "http://localhost:6060", "", "http://localhost:6060/debug/pprof", "localhost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := URLTarget(tc.raw, tc.service)
			if err != nil {
				t.Fatalf("URLTarget(%q): %v", tc.raw, err)
			}
			if got.BaseURL != tc.wantBase || got.Meta.Service != tc.wantService || got.Meta.Namespace != LocalNamespace {
				t.Fatalf("URLTarget(%q) = %+v, want base %s, service %s, namespace local", tc.raw, got, tc.wantBase, tc.wantService)
			}
		})
	}
	if _, err := URLTarget("127.0.0.1:6060/debug/pprof", ""); err == nil {
		t.Error("URLTarget accepted a URL without a scheme")
	}
}
