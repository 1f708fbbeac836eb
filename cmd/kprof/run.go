package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/kprof/kprof/internal/local"
	"github.com/kprof/kprof/internal/logging"
)

type runFlags struct {
	config       string
	once         bool
	duration     time.Duration
	output       string
	flushTimeout time.Duration
	printDefault bool
	verbose      bool
}

func newRunCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run [--config FILE] [--once] [--duration D] [--output DIR]",
		Short: "Capture profiles of the targets in a config file into a directory or S3 (local mode, no cluster needed)",
		Long: `Run captures the pprof endpoints listed in a YAML config file on a schedule (or once with --once)
and stores the profiles, unchanged, below a directory (storage.local.path, default ./profiles).

With storage.s3 in the config file the profiles go to an S3 bucket (or an S3-compatible store
such as MinIO, with storage.s3.endpoint) instead, through a spool directory (storage.spool.path,
default ./profiles/.spool): a profile is kept on disk until S3 has it, so an outage loses
nothing. Credentials come from the AWS default chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
AWS_PROFILE, IRSA, ...), never from the config file. At the end, run waits up to --flush-timeout
for the spool to empty; what is left is uploaded by the next run with the same spool, and
makes --once fail.

Without --config it uses the embedded default config, which captures the sample app
(go run ./examples/sample-app --background-load) on 127.0.0.1:6060; print it with
--print-default-config to start a config of your own.`,
		Example: `  kprof run --once
  kprof run --config kprof.yaml --duration 10m --output /tmp/profiles
  AWS_PROFILE=profiling kprof run --config kprof-s3.yaml --flush-timeout 2m
  kprof run --print-default-config > kprof.yaml`,
		Args:                  cobra.NoArgs,
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.printDefault {
				_, err := cmd.OutOrStdout().Write(local.DefaultYAML())
				return err
			}
			return runLocal(cmd.Context(), cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.config, "config", "c", "", "config file (default: the embedded default config)")
	fl.BoolVar(&f.once, "once", false, "capture every target once, then exit; fails if any capture failed")
	fl.DurationVar(&f.duration, "duration", 0, "stop after this long (default: until interrupted)")
	fl.StringVarP(&f.output, "output", "o", "", "directory to store profiles in (overrides storage.local.path; not with storage.s3)")
	fl.DurationVar(&f.flushTimeout, "flush-timeout", local.DefaultFlushTimeout, "with storage.s3: how long the end of the run waits for spooled profiles to upload")
	fl.BoolVar(&f.printDefault, "print-default-config", false, "print the embedded default config and exit")
	fl.BoolVar(&f.verbose, "verbose", false, "log debug messages")
	_ = fl.MarkDeprecated("verbose", "use --log-level=debug")
	cmd.MarkFlagsMutuallyExclusive("once", "duration")
	return cmd
}

func runLocal(ctx context.Context, cmd *cobra.Command, f runFlags) error {
	log := cmdLogger(cmd)
	var (
		file local.Config
		err  error
	)
	if f.config == "" {
		file, err = local.Default()
		log.Info("no --config given: using the embedded default config (see --print-default-config)",
			"targets", len(file.Targets))
	} else {
		file, err = local.Load(f.config)
	}
	if err != nil {
		return err
	}
	if cmd.Flags().Changed("output") {
		switch {
		case f.output == "":
			return fmt.Errorf("--output: must not be empty")
		case file.Storage.UsesS3():
			return fmt.Errorf("--output: the config file sets storage.s3, so profiles go to s3://%s, not to a directory; "+
				"remove storage.s3 to store below --output, or set storage.spool.path to move the spool", file.Storage.S3.Bucket)
		}
		file.Storage.Local.Path = f.output
	}
	if f.flushTimeout <= 0 {
		return fmt.Errorf("--flush-timeout: must be positive, got %s", f.flushTimeout)
	}
	r, err := local.NewRunner(local.RunnerConfig{
		File:         file,
		Once:         f.once,
		Duration:     f.duration,
		FlushTimeout: f.flushTimeout,
		Logger:       log,
		Out:          cmd.OutOrStdout(),
		Terminal:     logging.IsTerminal(cmd.ErrOrStderr()),
		Progress:     cmd.ErrOrStderr(),
	})
	if err != nil {
		return err
	}
	err = r.Run(ctx)
	if err != nil && f.config == "" {
		log.Info("hint: the embedded default config captures the sample app; start it with: go run ./examples/sample-app --background-load")
	}
	return err
}
