package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/pprof/profile"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kprof/kprof/internal/local"
	"github.com/kprof/kprof/internal/logging"
	"github.com/kprof/kprof/internal/profdiff"
)

// mergeFlags are the selection and limit flags shared by merge and diff.
type mergeFlags struct {
	typ           string
	maxProfiles   int
	maxFileBytes  int64
	maxSamples    int
	maxTotalBytes int64
}

func addMergeFlags(fs *pflag.FlagSet, f *mergeFlags) {
	fs.StringVarP(&f.typ, "type", "t", "", "profile type to take from directories (cpu, heap, ...); required when a directory holds several")
	fs.IntVar(&f.maxProfiles, "max-profiles", profdiff.DefaultMaxInputs, "refuse to merge more profiles than this")
	fs.Int64Var(&f.maxFileBytes, "max-file-bytes", profdiff.DefaultMaxFileBytes, "refuse a profile file larger than this (its decompressed data may be 16 times as large)")
	fs.IntVar(&f.maxSamples, "max-samples", profdiff.DefaultMaxSamples, "stop when the merged profile holds more samples than this (bounds memory)")
	fs.Int64Var(&f.maxTotalBytes, "max-total-bytes", profdiff.DefaultMaxTotalBytes, "stop when the profile files read add up to more bytes than this")
}

// limitFlags names the flag of each MergeConfig limit, for error messages.
var limitFlags = map[string]string{
	"MaxInputs": "--max-profiles", "MaxFileBytes": "--max-file-bytes",
	"MaxSamples": "--max-samples", "MaxTotalBytes": "--max-total-bytes",
}

// mergeSelection selects the profiles of paths and merges them, with a progress bar
// labelled label on a terminal.
func mergeSelection(ctx context.Context, cmd *cobra.Command, label string, paths []string, f mergeFlags) (*profdiff.Merged, error) {
	inputs, err := profdiff.Select(paths, f.typ, f.maxFileBytes)
	if err != nil {
		return nil, err
	}
	errOut := cmd.ErrOrStderr()
	prog := local.NewCountProgress(label, "profiles", len(inputs), logging.IsTerminal(errOut), errOut, cmdLogger(cmd))
	m, err := profdiff.Merge(ctx, inputs, profdiff.MergeConfig{
		MaxInputs: f.maxProfiles, MaxFileBytes: f.maxFileBytes, MaxSamples: f.maxSamples,
		MaxTotalBytes: f.maxTotalBytes, Progress: func(done, _ int) { prog.Set(done) },
	})
	prog.Stop()
	var le *profdiff.LimitError
	if errors.As(err, &le) {
		return nil, fmt.Errorf("%w (flag %s)", err, limitFlags[le.Limit])
	}
	return m, err
}

func newProfilesMergeCmd() *cobra.Command {
	var (
		f   mergeFlags
		out string
	)
	cmd := &cobra.Command{
		Use:   "merge FILE|DIR... -o OUT [--type TYPE]",
		Short: "Merge profiles of one type into one pprof file",
		Long: `Merge reads each profile (a file, or every profile file of --type below a directory, as
kprof stores them) one at a time and merges them with pprof's profile.Merge into OUT. A
profile's type comes from its sidecar (FILE.json), else its name (…_TYPE.pb.gz), else its
sample types. Profiles of different sample types or units are refused with both named.
Limits (--max-*) stop a merge with a message before it takes unbounded memory. A progress
bar is drawn on a terminal.`,
		Example: `  kprof profiles merge ./profiles/local/checkout/2026-12-07 --type cpu -o checkout-cpu.pb.gz
  go tool pprof -http : checkout-cpu.pb.gz`,
		Args:                  cobra.MinimumNArgs(1),
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("-o/--output: required (the merged profile file)")
			}
			m, err := mergeSelection(cmd.Context(), cmd, "merge", args, f)
			if err != nil {
				return err
			}
			if err := writeProfile(out, m.Profile); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Merged %d %s profile(s) (%d samples) into %s\n", m.Inputs, m.Type, len(m.Profile.Sample), out)
			return err
		},
	}
	addMergeFlags(cmd.Flags(), &f)
	cmd.Flags().StringVarP(&out, "output", "o", "", "file to write the merged profile to (gzipped pprof)")
	return cmd
}

// writeProfile writes p gzipped to path through a temporary file in the same directory.
func writeProfile(path string, p *profile.Profile) error {
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil {
		return fmt.Errorf("encode profile %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("write profile %s: %w", path, err)
	}
	_, werr := tmp.Write(buf.Bytes())
	perr := tmp.Chmod(0o644)
	cerr := tmp.Close()
	if err := errors.Join(werr, perr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write profile %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write profile %s: %w", path, err)
	}
	return nil
}
