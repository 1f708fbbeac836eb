package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

func TestNew(t *testing.T) {
	t.Run("auto writes JSON when the output is not a terminal, durations as strings", func(t *testing.T) {
		var buf bytes.Buffer
		h, err := New(Config{Out: &buf})
		if err != nil {
			t.Fatal(err)
		}
		// Through logr, as controller-runtime and the capture engine log.
		logr.FromSlogHandler(h).Info("captured", "took", 1500*time.Millisecond)
		var line map[string]any
		if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
			t.Fatalf("not a JSON line: %v\n%s", err, buf.String())
		}
		if line["msg"] != "captured" || line["took"] != "1.5s" || line["level"] != "INFO" {
			t.Errorf("got %v, want msg captured, took 1.5s, level INFO", line)
		}
	})
	t.Run("auto writes JSON to a regular file", func(t *testing.T) {
		f, err := os.Create(filepath.Join(t.TempDir(), "log"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		h, err := New(Config{Out: f})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := h.(*slog.JSONHandler); !ok {
			t.Errorf("handler %T, want JSON for a file", h)
		}
	})
	t.Run("text writes key=value lines with human durations", func(t *testing.T) {
		var buf bytes.Buffer
		h, err := New(Config{Out: &buf, Format: "text", Level: "debug"})
		if err != nil {
			t.Fatal(err)
		}
		slog.New(h).Debug("stopping", "grace", 10*time.Second)
		if got := buf.String(); !strings.Contains(got, `level=DEBUG msg=stopping grace=10s`) {
			t.Errorf("got %q", got)
		}
	})
	t.Run("logr's V levels are written as DEBUG", func(t *testing.T) {
		var buf bytes.Buffer
		h, err := New(Config{Out: &buf, Level: "debug"})
		if err != nil {
			t.Fatal(err)
		}
		logr.FromSlogHandler(h).V(1).Info("detail")
		if got := buf.String(); !strings.Contains(got, `"level":"DEBUG"`) {
			t.Errorf("got %q, want level DEBUG", got)
		}
	})
	t.Run("the level drops less severe lines", func(t *testing.T) {
		var buf bytes.Buffer
		h, err := New(Config{Out: &buf, Level: "WARN"})
		if err != nil {
			t.Fatal(err)
		}
		slog.New(h).Info("dropped")
		logr.FromSlogHandler(h).V(1).Info("dropped too")
		slog.New(h).Warn("kept")
		if got := buf.String(); strings.Contains(got, "dropped") || !strings.Contains(got, "kept") {
			t.Errorf("got %q", got)
		}
	})
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"a bad level is named with its flag", Config{Out: &bytes.Buffer{}, Level: "loud"}, `--log-level: want debug, info, warn or error, got "loud"`},
		{"a bad format is named with its flag", Config{Out: &bytes.Buffer{}, Format: "yaml"}, `--log-format: want auto, text or json, got "yaml"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
