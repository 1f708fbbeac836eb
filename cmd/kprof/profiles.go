package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kprof/kprof/internal/index"
	"github.com/kprof/kprof/internal/logging"
)

// storeFlags choose the store the profiles commands read.
type storeFlags struct {
	store, endpoint, region string
	timeout                 time.Duration
}

// bind defines the store flags in fs.
func (s *storeFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&s.store, "store", index.DefaultStore, "directory or s3://BUCKET/PREFIX to read profiles from")
	fs.StringVar(&s.endpoint, "s3-endpoint", "", "S3-compatible endpoint, e.g. http://minio:9000 (default: AWS)")
	fs.StringVar(&s.region, "s3-region", "", "region of the bucket (default: the AWS configuration chain)")
	fs.DurationVar(&s.timeout, "timeout", index.DefaultTimeout, "limit of each S3 request")
}

func (s *storeFlags) open(cmd *cobra.Command) (index.Index, error) {
	if s.timeout <= 0 {
		return nil, fmt.Errorf("--timeout: must be positive, got %s", s.timeout)
	}
	return index.New(cmd.Context(), index.Config{Store: s.store, S3Endpoint: s.endpoint, S3Region: s.region, Timeout: s.timeout})
}

func newProfilesCmd() *cobra.Command {
	var sf storeFlags
	cmd := &cobra.Command{
		Use:   "profiles",
		Short: "Browse the profiles kprof stored: list, get, merge and diff them",
		Long: `Profiles lists, fetches, merges and diffs the profiles kprof stored (merge and diff also read
files and directories). A store is a directory (kprof run's ./profiles, the operator's localStorage,
the agent's pprof files) or under an S3 prefix (s3://BUCKET/PREFIX; credentials from the AWS default
chain: environment, shared config, web identity, instance metadata). Profiles are not downloaded to
list them.`,
		Example: `  kprof profiles list
  kprof profiles list --service checkout --since 1h
  kprof profiles list --store s3://profiles/prod --s3-endpoint http://127.0.0.1:9000 --reason threshold -o wide
  kprof profiles get shop/checkout/2026-12-07/20261207T140203.000Z_checkout-7d9_cpu.pb.gz -o cpu.pb.gz`,
	}
	list, get, merge, diff := newProfilesListCmd(&sf), newProfilesGetCmd(&sf), newProfilesMergeCmd(&sf), newProfilesDiffCmd(&sf)
	for _, c := range []*cobra.Command{list, get, merge, diff} {
		sf.bind(c.Flags())
	}
	cmd.AddCommand(list, get, merge, diff)
	return cmd
}

type listFlags struct {
	f                index.Filter
	since            string
	from, to, output string
}

func newProfilesListCmd(sf *storeFlags) *cobra.Command {
	var lf listFlags
	cmd := &cobra.Command{
		Use:   "list [--namespace NS] [--service S] [--pod P] [--type T] [--reason R] [--since 1h | --from T --to T] [-o table|wide|json|name]",
		Short: "List stored profiles, oldest first",
		Long: `List prints one line per stored profile, sorted by capture time. --reason matches the trigger
(schedule, threshold, manual) or any part of the reason ("cpu 93%"). --from and --to take RFC 3339
times (2026-12-07T14:00:00Z), a date-time without zone (UTC) or a date. A profile whose metadata
could not be read is listed with its error (-o wide shows it).`,
		Args:                  cobra.NoArgs,
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := lf.filter(time.Now())
			if err != nil {
				return err
			}
			switch lf.output {
			case "table", "wide", "json", "name":
			default:
				return fmt.Errorf("-o/--output: want table, wide, json or name, got %q", lf.output)
			}
			x, err := sf.open(cmd)
			if err != nil {
				return err
			}
			es, err := x.List(cmd.Context(), f)
			if err != nil {
				return err
			}
			switch lf.output {
			case "json":
				return writeJSON(cmd.OutOrStdout(), es)
			case "name":
				return writeNames(cmd.OutOrStdout(), es)
			}
			if len(es) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "No profiles found in %s.\n", x)
				return nil
			}
			return writeTable(cmd.OutOrStdout(), es, lf.output == "wide")
		},
	}
	fl := cmd.Flags()
	lf.bind(fl)
	fl.StringVarP(&lf.f.Type, "type", "t", "", "only profiles of this type (cpu, heap, goroutine, ...)")
	fl.StringVarP(&lf.output, "output", "o", "table", "output format: table, wide, json, or name (the IDs only, one a line)")
	cmd.MarkFlagsMutuallyExclusive("since", "from")
	return cmd
}

// filterFlagNames are the flags bind defines (--type is defined by each command).
var filterFlagNames = []string{"namespace", "service", "pod", "reason", "since", "from", "to"}

// bind defines the filter flags but --type (and -o) in fl.
func (lf *listFlags) bind(fl *pflag.FlagSet) {
	fl.StringVarP(&lf.f.Namespace, "namespace", "n", "", "only profiles of this namespace")
	fl.StringVar(&lf.f.Service, "service", "", "only profiles of this service")
	fl.StringVar(&lf.f.Pod, "pod", "", "only profiles of this pod")
	fl.StringVar(&lf.f.Reason, "reason", "", "only profiles of this trigger (schedule, threshold, manual) or whose reason contains this")
	fl.StringVar(&lf.since, "since", "", "only profiles captured in this long before now, e.g. 1h")
	fl.StringVar(&lf.from, "from", "", "only profiles captured at or after this time")
	fl.StringVar(&lf.to, "to", "", "only profiles captured before this time")
}

// filter is the Filter the flags ask for, with --since counted back from now.
func (lf listFlags) filter(now time.Time) (index.Filter, error) {
	f := lf.f
	err := index.TimeRange{Since: lf.since, From: lf.from, To: lf.to}.Apply(&f, now, func(flag string) string { return "--" + flag })
	return f, err
}

// writeJSON writes es as an indented JSON array, byte for byte what
// json.Encoder with SetIndent("", "  ") writes for the whole slice, one entry at a
// time through a buffer: encoding 100 000 entries at once held two copies of the
// whole output (the compact encoding and its indented form) in memory.
func writeJSON(w io.Writer, es []index.Entry) error {
	if len(es) == 0 {
		_, err := io.WriteString(w, "[]\n")
		return err
	}
	bw := bufio.NewWriter(w)
	_, _ = bw.WriteString("[\n  ")
	for i, e := range es {
		b, err := json.MarshalIndent(e, "  ", "  ")
		if err != nil {
			return err
		}
		if i > 0 {
			_, _ = bw.WriteString(",\n  ")
		}
		_, _ = bw.Write(b)
	}
	_, _ = bw.WriteString("\n]\n")
	return bw.Flush()
}

// writeNames writes the ID of each entry, one a line, through a buffer.
func writeNames(w io.Writer, es []index.Entry) error {
	bw := bufio.NewWriter(w)
	for _, e := range es {
		_, _ = bw.WriteString(e.ID)
		_ = bw.WriteByte('\n')
	}
	return bw.Flush()
}

// writeTable prints es as kubectl does: upper-case headers, aligned columns,
// "<none>" for an unknown value. Values are made printable (no terminal escapes from
// pod names or keys).
func writeTable(w io.Writer, es []index.Entry, wide bool) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	head := []string{"CAPTURED", "NAMESPACE", "SERVICE", "POD", "TYPE", "TRIGGER", "SIZE", "ID"}
	if wide {
		head = append(head, "CONTAINER", "DURATION", "CLUSTER", "SOURCE", "REASON", "LOCATION", "ERROR")
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, e := range es {
		at := ""
		if !e.CapturedAt.IsZero() {
			at = e.CapturedAt.UTC().Format("2006-01-02T15:04:05Z")
		}
		trigger := e.Trigger
		if trigger == "" {
			trigger = e.Reason
		}
		row := []string{at, e.Namespace, e.Service, e.Pod, e.Type, trigger, index.FormatSize(e.Size), e.ID}
		if wide {
			dur := ""
			if e.Duration > 0 {
				dur = e.Duration.String()
			}
			row = append(row, e.Container, dur, e.Cluster, e.Source, e.Reason, e.Location, e.Error)
		}
		for i, v := range row {
			row[i] = cell(v)
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// cell makes v one printable table cell.
func cell(v string) string {
	if v == "" {
		return "<none>"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\t' {
			return '?'
		}
		return r
	}, v)
}

func newProfilesGetCmd(sf *storeFlags) *cobra.Command {
	var output string
	var maxBytes int64
	cmd := &cobra.Command{
		Use:   "get ID [-o FILE]",
		Short: "Write one stored profile (its raw pprof bytes) to a file or stdout",
		Long: `Get writes the profile with the ID that kprof profiles list shows, byte for byte, to -o FILE, or to
stdout when stdout is not a terminal (kprof profiles get ID | go tool pprof -top /dev/stdin). It refuses
a profile larger than --max-bytes, an empty one and one that is not a pprof profile.`,
		Args:                  cobra.ExactArgs(1),
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if maxBytes <= 0 {
				return fmt.Errorf("--max-bytes: must be positive, got %d", maxBytes)
			}
			toStdout := output == "" || output == "-"
			if toStdout && logging.IsTerminal(cmd.OutOrStdout()) {
				return errors.New("refusing to write a binary profile to the terminal: use -o FILE, or redirect stdout")
			}
			x, err := sf.open(cmd)
			if err != nil {
				return err
			}
			data, err := x.Open(cmd.Context(), args[0], maxBytes)
			if err != nil {
				if errors.Is(err, index.ErrTooLarge) {
					return fmt.Errorf("%w (raise --max-bytes to get it)", err)
				}
				return err
			}
			if toStdout {
				_, err := cmd.OutOrStdout().Write(data)
				return err
			}
			if err := os.WriteFile(output, data, 0o644); err != nil {
				return fmt.Errorf("-o %s: %w", output, err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Wrote %s (%d bytes). Open it with: go tool pprof -http=: %s\n", output, len(data), output)
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "file to write the profile to (default: stdout, when not a terminal)")
	cmd.Flags().Int64Var(&maxBytes, "max-bytes", index.DefaultMaxProfileBytes, "largest profile to get, in bytes")
	return cmd
}
