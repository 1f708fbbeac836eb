package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kprof/kprof/internal/profdiff"
)

type diffFlags struct {
	mergeFlags
	lf           listFlags
	base, target []string
	out          string
	baseOut      string
	targetOut    string
	top          int
	sort         string
	sampleIndex  string
}

func newProfilesDiffCmd(sf *storeFlags) *cobra.Command {
	var f diffFlags
	cmd := &cobra.Command{
		Use:   "diff [--base SEL] --target SEL [--type TYPE] [--store DIR|s3://BUCKET/PREFIX] [filters] [-o OUT] [--top N]",
		Short: "Show the functions that grew and shrank most from a base to a target",
		Long: `Diff merges the base profiles and the target profiles (as merge does), normalises both and
prints the functions whose flat and cumulative values grew and shrank most.

` + selectorHelp + `

Default base: when --target names one profile of the store that a threshold trigger captured
and --base is omitted, the base is the merge of the same namespace's and service's scheduled
profiles of the same type captured in the hour before it; the output says which (how many, from
when to when), and names the service and the hour when there are none.

Normalisation: CPU profiles are compared per second of recorded time (the sum of the
merged profiles' durations), so a 10 s and a 30 s profile compare fairly; every other type
(heap, goroutine, mutex, ...) per profile (values divided by the number merged), so a day's
merge compares with a single capture.

-o writes one profile that holds the target and the normalised base negated (labelled as
pprof's -diff_base does it internally): "go tool pprof -top OUT" or "-http" shows the
difference. --base-out and --target-out write the normalised base and the merged target
for "go tool pprof -diff_base BASE_OUT TARGET_OUT".`,
		Example: `  # a threshold capture against its default base (the hour of scheduled profiles before it)
  kprof profiles diff --target "$(kprof profiles list --service checkout --reason threshold -o name | tail -n 1)"
  kprof profiles diff --store s3://acme-kprof-profiles/kprof --service checkout --type cpu \
      --base from=2026-12-06,to=2026-12-07 --target reason=threshold,since=1h
  kprof profiles diff --base profiles/shop/checkout/2026-12-06 --target spike_cpu.pb.gz --type cpu
  kprof profiles diff --base base.pb.gz --target spike.pb.gz -o diff.pb.gz && go tool pprof -http : diff.pb.gz`,
		Args:                  cobra.NoArgs,
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDiff(cmd, sf, f)
		},
	}
	fs := cmd.Flags()
	addMergeFlags(fs, &f.mergeFlags)
	f.lf.bind(fs)
	cmd.MarkFlagsMutuallyExclusive("since", "from")
	// StringArray, not StringSlice: a selector holds commas.
	fs.StringArrayVar(&f.base, "base", nil, "the baseline: SEL, ID, file or directory (repeatable); default for a threshold capture: its service's scheduled profiles of the hour before")
	fs.StringArrayVar(&f.target, "target", nil, "the target: SEL, ID, file or directory (repeatable)")
	fs.StringVarP(&f.out, "output", "o", "", "write the diff profile (target minus normalised base) to this file")
	fs.StringVar(&f.baseOut, "base-out", "", "write the normalised, merged base to this file")
	fs.StringVar(&f.targetOut, "target-out", "", "write the merged target to this file")
	fs.IntVar(&f.top, "top", 10, "how many functions to list as grown and as shrunk")
	fs.StringVar(&f.sort, "sort", "flat", "order by the change of the flat or the cumulative value: flat or cum")
	fs.StringVar(&f.sampleIndex, "sample-index", "", "sample type to compare, e.g. inuse_space or alloc_space (default: the profiles' default)")
	return cmd
}

func runDiff(cmd *cobra.Command, sf *storeFlags, f diffFlags) error {
	var errs []error
	if len(f.target) == 0 {
		errs = append(errs, errors.New("--target: required"))
	}
	if f.top < 1 {
		errs = append(errs, fmt.Errorf("--top: must be at least 1, got %d", f.top))
	}
	if f.sort != "flat" && f.sort != "cum" {
		errs = append(errs, fmt.Errorf("--sort: want flat or cum, got %q", f.sort))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	sel := newSelection(cmd, sf, f.lf, f.mergeFlags)
	targetIn, err := sel.resolve(f.target)
	if err != nil {
		return fmt.Errorf("--target: %w", err)
	}
	var baseIn []profdiff.Input
	if len(f.base) > 0 {
		if baseIn, err = sel.resolve(f.base); err != nil {
			return fmt.Errorf("--base: %w", err)
		}
	} else {
		if len(targetIn) != 1 || targetIn[0].Entry == nil {
			return fmt.Errorf("--base: required, unless --target names one threshold capture of --store by its ID or a selector (it names %d profile(s), the first %s)",
				len(targetIn), targetIn[0].Path)
		}
		b, err := profdiff.DefaultBase(cmd.Context(), sel.x, *targetIn[0].Entry)
		if err != nil {
			return fmt.Errorf("--base: %w", err)
		}
		baseIn = b.Inputs
		if _, err := fmt.Fprintf(cmd.OutOrStdout(), "base: %s\n", b); err != nil {
			return err
		}
	}
	if err := sel.checkFiltersUsed(); err != nil {
		return err
	}
	base, err := mergeInputs(cmd.Context(), cmd, "base", baseIn, f.mergeFlags)
	if err != nil {
		return fmt.Errorf("--base: %w", err)
	}
	target, err := mergeInputs(cmd.Context(), cmd, "target", targetIn, f.mergeFlags)
	if err != nil {
		return fmt.Errorf("--target: %w", err)
	}
	d, err := profdiff.Compare(base, target, f.sampleIndex)
	if err != nil {
		return fmt.Errorf("compare base and target: %w", err)
	}
	if err := profdiff.WriteReport(cmd.OutOrStdout(), d, f.top, f.sort == "cum"); err != nil {
		return err
	}
	if f.out != "" {
		p, err := d.Profile()
		if err != nil {
			return err
		}
		if err := writeProfile(f.out, p); err != nil {
			return err
		}
		if _, err := fmt.Fprintf(cmd.OutOrStdout(), "\nWrote the diff profile to %s (go tool pprof -top %s)\n", f.out, f.out); err != nil {
			return err
		}
	}
	if f.baseOut != "" {
		if err := writeProfile(f.baseOut, d.NormalisedBase()); err != nil {
			return err
		}
	}
	if f.targetOut != "" {
		if err := writeProfile(f.targetOut, target.Profile); err != nil {
			return err
		}
	}
	return nil
}
