package main

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kprof/kprof/internal/logging"
)

// logOptions are the root's logging flags, shared by every subcommand.
type logOptions struct {
	level, format string
}

func addLogFlags(fs *pflag.FlagSet, o *logOptions) {
	fs.StringVar(&o.level, "log-level", "info", "least level logged: debug, info, warn or error")
	fs.StringVar(&o.format, "log-format", logging.FormatAuto, "log format: auto (text on a terminal, JSON otherwise), text or json")
}

type handlerKey struct{}

// setUpLogging builds the handler of the root's logging flags, writing to the
// command's stderr, and puts it into the command's context. A subcommand's older
// level flag (--verbose of run and capture, --zap-log-level of the operator) sets the
// level when --log-level is not given.
func setUpLogging(cmd *cobra.Command, o logOptions) error {
	level := o.level
	if !cmd.Flags().Changed("log-level") {
		if v := cmd.Flags().Lookup("verbose"); v != nil && v.Changed && v.Value.String() == "true" {
			level = "debug"
		}
		if z := cmd.Flags().Lookup("zap-log-level"); z != nil && z.Changed {
			l, err := zapLevel(z.Value.String())
			if err != nil {
				return fmt.Errorf("--zap-log-level: %w", err)
			}
			level = l
		}
	}
	h, err := logging.New(logging.Config{Level: level, Format: o.format, Out: cmd.ErrOrStderr()})
	if err != nil {
		return err
	}
	cmd.SetContext(context.WithValue(cmd.Context(), handlerKey{}, h))
	return nil
}

// zapLevel maps a controller-runtime --zap-log-level value onto a --log-level one:
// debug, info and error as they are, an integer verbosity above 0 as debug, the
// levels above error (dpanic, panic, fatal) as error.
func zapLevel(s string) (string, error) {
	switch v := strings.ToLower(s); v {
	case "debug", "info", "warn", "error":
		return v, nil
	case "dpanic", "panic", "fatal":
		return "error", nil
	}
	if n, err := strconv.Atoi(s); err == nil && n > 0 {
		return "debug", nil
	}
	return "", fmt.Errorf("want debug, info, warn, error or a verbosity above 0, got %q", s)
}

// logHandler returns the handler setUpLogging made; a command run without the root
// (as some tests do) gets the defaults on its stderr.
func logHandler(cmd *cobra.Command) slog.Handler {
	if h, ok := cmd.Context().Value(handlerKey{}).(slog.Handler); ok {
		return h
	}
	h, _ := logging.New(logging.Config{Out: cmd.ErrOrStderr()})
	return h
}

// cmdLogger is logHandler as a *slog.Logger, the logger of every kprof component;
// controller-runtime gets it bridged onto logr (logging.ToLogr).
func cmdLogger(cmd *cobra.Command) *slog.Logger { return slog.New(logHandler(cmd)) }
