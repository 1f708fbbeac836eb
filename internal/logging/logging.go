// Package logging is the one log style of every kprof role (operator, agent, run,
// capture): slog, as human-readable key=value text on a terminal and as JSON
// otherwise (a pod, a pipe, a file), at one least level, with durations written as
// Go duration strings ("1.5s") in both formats rather than JSON's nanoseconds.
// Every component takes a *slog.Logger (nil: log nothing, see OrDiscard);
// controller-runtime gets the same handler bridged onto logr (ToLogr), and its
// reconcilers keep log.FromContext(ctx).
package logging

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/kprof/kprof/internal/config/check"
)

// Formats of Config.Format.
const (
	FormatAuto = "auto"
	FormatText = "text"
	FormatJSON = "json"
)

// Config configures a logger.
type Config struct {
	// Level is the least level logged: debug, info, warn or error; info when empty.
	Level string
	// Format is auto (text when Out is a terminal, else JSON), text or json; auto when empty.
	Format string
	// Out receives the log lines. Required.
	Out io.Writer
}

// SetDefaults fills in the zero fields: level info, format auto.
func (c *Config) SetDefaults() {
	check.Default(&c.Level, "info")
	check.Default(&c.Format, FormatAuto)
}

// Validate reports a bad field by its flag name; an empty Level or Format is valid
// (SetDefaults fills it).
func (c *Config) Validate() error {
	var errs []error
	if c.Level != "" {
		if _, err := ParseLevel(c.Level); err != nil {
			errs = append(errs, fmt.Errorf("--log-level: %w", err))
		}
	}
	switch c.Format {
	case "", FormatAuto, FormatText, FormatJSON:
	default:
		errs = append(errs, fmt.Errorf("--log-format: want auto, text or json, got %q", c.Format))
	}
	if c.Out == nil {
		errs = append(errs, errors.New("log output: required"))
	}
	return errors.Join(errs...)
}

// ParseLevel parses debug, info, warn (or warning) and error, in any case.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("want debug, info, warn or error, got %q", s)
}

// New returns the handler cfg describes, after filling in its defaults.
func New(cfg Config) (slog.Handler, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	level, _ := ParseLevel(cfg.Level)
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: replaceAttr}
	if cfg.Format == FormatText || cfg.Format == FormatAuto && IsTerminal(cfg.Out) {
		return slog.NewTextHandler(cfg.Out, opts), nil
	}
	return slog.NewJSONHandler(cfg.Out, opts), nil
}

// replaceAttr writes a time.Duration as "1.5s" (JSON would write nanoseconds), and
// a level between the named ones as the named one below it: logr's V(1) is slog
// level -1, which slog would write as "DEBUG+3".
func replaceAttr(groups []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	if a.Key == slog.LevelKey && len(groups) == 0 {
		if l, ok := a.Value.Any().(slog.Level); ok {
			a.Value = slog.StringValue(levelName(l))
		}
	}
	return a
}

func levelName(l slog.Level) string {
	switch {
	case l < slog.LevelInfo:
		return "DEBUG"
	case l < slog.LevelWarn:
		return "INFO"
	case l < slog.LevelError:
		return "WARN"
	}
	return "ERROR"
}

// IsTerminal reports whether w is a terminal (for log formats and progress bars).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
