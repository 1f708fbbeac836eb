package logging

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/go-logr/logr"
)

func TestOrDiscard(t *testing.T) {
	t.Run("a nil logger becomes one that logs nothing", func(t *testing.T) {
		l := OrDiscard(nil)
		if l == nil || l.Enabled(context.Background(), slog.LevelError) {
			t.Errorf("OrDiscard(nil) = %v; want a logger with every level disabled", l)
		}
	})
	t.Run("a given logger is kept", func(t *testing.T) {
		l := slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
		if OrDiscard(l) != l {
			t.Error("OrDiscard replaced a non-nil logger")
		}
	})
}

func TestBridge(t *testing.T) {
	t.Run("controller-runtime's logr errors reach the slog handler under err", func(t *testing.T) {
		var buf bytes.Buffer
		ToLogr(slog.New(slog.NewTextHandler(&buf, nil))).Error(errors.New("boom"), "reconcile failed", "config", "shop")
		if got := buf.String(); !strings.Contains(got, `msg="reconcile failed" err=boom config=shop`) {
			t.Errorf("logged %q; want msg, err and config", got)
		}
	})
	t.Run("the logger of a reconcile's context logs through slog with its values", func(t *testing.T) {
		var buf bytes.Buffer
		lr := ToLogr(slog.New(slog.NewTextHandler(&buf, nil))).WithValues("controller", "profilingconfig")
		FromContext(logr.NewContext(context.Background(), lr)).Info("stored profile", "key", "k")
		if got := buf.String(); !strings.Contains(got, `msg="stored profile" controller=profilingconfig key=k`) {
			t.Errorf("logged %q; want the context logger's values and the record's", got)
		}
	})
	t.Run("a context without a logger gives one that logs nothing", func(t *testing.T) {
		if FromContext(context.Background()).Enabled(context.Background(), slog.LevelError) {
			t.Error("FromContext of a bare context logs")
		}
	})
}
