package logging

import (
	"context"
	"log/slog"

	"github.com/go-logr/logr"

	"github.com/kprof/kprof/internal/config/check"
)

// discard is the logger of a component given none: a nil *slog.Logger means
// "log nothing" everywhere in kprof, as logr's zero Logger did, so a library used
// without a logger (a test, a benchmark) stays silent instead of writing to
// slog.Default() in a format the process did not choose.
var discard = slog.New(slog.DiscardHandler)

// OrDiscard returns l, or a logger that drops every record when l is nil. Configs
// call it in SetDefaults so that nil has this one meaning.
func OrDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return discard
	}
	return l
}

// ToLogr bridges l onto logr for controller-runtime (ctrl.SetLogger), whose
// reconcilers keep the kubebuilder convention log.FromContext(ctx).
func ToLogr(l *slog.Logger) logr.Logger { return logr.FromSlogHandler(OrDiscard(l).Handler()) }

// FromLogr is the way back, for the components the operator wires with the
// manager's logger.
func FromLogr(l logr.Logger) *slog.Logger {
	if l.GetSink() == nil {
		return discard
	}
	return slog.New(logr.ToSlogHandler(l))
}

// FromContext returns the logger controller-runtime put into ctx (a reconcile's,
// with its controller and object keys), or a discarding one when ctx has none.
func FromContext(ctx context.Context) *slog.Logger {
	l, err := logr.FromContext(ctx)
	if err != nil {
		return discard
	}
	return FromLogr(l)
}

// loggerSetting is the check.Setting of a Config's Logger.
type loggerSetting struct{ p **slog.Logger }

func (s loggerSetting) SetDefault()  { *s.p = OrDiscard(*s.p) }
func (s loggerSetting) Check() error { return nil }

// Setting is the setting of a Config's Logger, for its check.Setting list: nil means
// discard (OrDiscard), and every logger is valid.
func Setting(p **slog.Logger) check.Setting { return loggerSetting{p: p} }
