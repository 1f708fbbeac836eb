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
	fs.StringVarP(&f.typ, "type", "t", "", "profile type to merge (cpu, heap, ...): of directories and selectors; required when they hold several")
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

// mergeInputs merges inputs with a progress bar labelled label on a terminal.
func mergeInputs(ctx context.Context, cmd *cobra.Command, label string, inputs []profdiff.Input, f mergeFlags) (*profdiff.Merged, error) {
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

func newProfilesMergeCmd(sf *storeFlags) *cobra.Command {
	var (
		f   mergeFlags
		lf  listFlags
		out string
	)
	cmd := &cobra.Command{
		Use:   "merge [SEL...] -o OUT [--type TYPE] [--store DIR|s3://BUCKET/PREFIX] [filters]",
		Short: "Merge profiles of one type into one pprof file",
		Long: `Merge reads each selected profile one at a time, from files or from a store, and merges them
with pprof's profile.Merge into OUT. Without arguments it merges the profiles of --store that the
filter flags select, as "kprof profiles list" with the same flags lists them.

` + selectorHelp + `

A file's type comes from its sidecar (FILE.json), else its name (…_TYPE.pb.gz), else its sample
types; a stored profile's from the store's metadata. Profiles of different types, sample types or
units are refused with two of them named; a selection of several types without --type names the
types. Limits (--max-*) stop a merge with a message before it takes unbounded memory. A progress
bar is drawn on a terminal.`,
		Example: `  kprof profiles merge --store s3://acme-kprof-profiles/kprof --service checkout --type cpu --since 24h -o checkout-cpu.pb.gz
  kprof profiles merge service=checkout,type=heap,from=2026-12-07T13:00,to=2026-12-07T14:00 -o heap.pb.gz
  kprof profiles merge ./profiles/local/checkout/2026-12-07 --type cpu -o checkout-cpu.pb.gz
  go tool pprof -http : checkout-cpu.pb.gz`,
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("-o/--output: required (the merged profile file)")
			}
			sel := newSelection(cmd, sf, lf, f)
			inputs, err := sel.resolve(args)
			if err != nil {
				return err
			}
			if err := sel.checkFiltersUsed(); err != nil {
				return err
			}
			m, err := mergeInputs(cmd.Context(), cmd, "merge", inputs, f)
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
	lf.bind(cmd.Flags())
	cmd.MarkFlagsMutuallyExclusive("since", "from")
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
