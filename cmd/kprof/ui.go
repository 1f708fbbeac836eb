package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kprof/kprof/internal/index"
	"github.com/kprof/kprof/internal/lifecycle"
	"github.com/kprof/kprof/internal/ui"
)

// Defaults of kprof ui.
const (
	defaultUIListen   = "127.0.0.1:8080"
	uiShutdownTimeout = 5 * time.Second
)

// register adds the store flags (the same as kprof profiles') to fs.
func (s *storeFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&s.store, "store", index.DefaultStore, "directory or s3://BUCKET/PREFIX to read profiles from")
	fs.StringVar(&s.endpoint, "s3-endpoint", "", "S3-compatible endpoint, e.g. http://minio:9000 (default: AWS)")
	fs.StringVar(&s.region, "s3-region", "", "region of the bucket (default: the AWS configuration chain)")
	fs.DurationVar(&s.timeout, "timeout", index.DefaultTimeout, "limit of each S3 request")
}

func newUICmd() *cobra.Command {
	var sf storeFlags
	var listen string
	var maxBytes int64
	var maxMerge int
	var localFiles bool
	cmd := &cobra.Command{
		Use:   "ui [--store DIR|s3://BUCKET/PREFIX] [--listen 127.0.0.1:8080]",
		Short: "Browse the stored profiles in a web browser: list, timeline, flame graphs, merges and diffs",
		Long: `UI serves a web page over the profiles kprof stored (the same stores as kprof profiles): a list
with the filters of kprof profiles list (the URL query mirrors them: ?service=checkout&type=cpu&since=1h),
a per-service timeline of captures with threshold triggers marked, and each profile in google/pprof's
own web UI (flame graph, top, graph, source). The list links the merge of its profiles of each type,
and each threshold capture's diff against its default base (the service's scheduled profiles of the
hour before it, as kprof profiles diff takes it): the functions that grew and shrank most, and pprof
over the difference. It only reads the store. It listens on loopback
(127.0.0.1:8080) unless --listen names another address; an address without a host means loopback.
pprof's source and disassembly views read the files a profile names from this machine's disk, as
go tool pprof -http does: kprof ui serves them on loopback only, unless --local-files says otherwise.`,
		Example: `  kprof ui                      # after make demo: the demo's profiles on http://127.0.0.1:8080
  kprof ui --store s3://profiles/prod --s3-endpoint http://127.0.0.1:9000 --listen 127.0.0.1:9090`,
		Args:                  cobra.NoArgs,
		DisableFlagsInUseLine: true,
		Annotations:           map[string]string{serviceAnnotation: "true"},
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := cmdLogger(cmd)
			if maxBytes <= 0 {
				return fmt.Errorf("--max-bytes: must be positive, got %d", maxBytes)
			}
			if maxMerge <= 0 {
				return fmt.Errorf("--max-merge-profiles: must be positive, got %d", maxMerge)
			}
			addr, err := uiListenAddr(listen)
			if err != nil {
				return err
			}
			x, err := sf.open(cmd)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("--listen %s: %w", addr, err)
			}
			loopback := ln.Addr().(*net.TCPAddr).IP.IsLoopback()
			if !loopback {
				log.Warn("kprof ui listens beyond loopback: anyone who reaches this address can read every profile in the store", "listen", ln.Addr().String())
			}
			if !cmd.Flags().Changed("local-files") {
				localFiles = loopback
			}
			h, err := ui.New(ui.Config{Index: x, Logger: log, MaxProfileBytes: maxBytes, MaxMergeProfiles: maxMerge, LocalFiles: localFiles})
			if err != nil {
				ln.Close()
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "kprof ui: serving the profiles of %s on http://%s/\n", x, ln.Addr())
			return serveUI(cmd.Context(), ln, h, log)
		},
	}
	sf.register(cmd.Flags())
	cmd.Flags().StringVar(&listen, "listen", defaultUIListen, "address to serve the UI on (HOST:PORT; port 0 picks a free port)")
	cmd.Flags().Int64Var(&maxBytes, "max-bytes", ui.DefaultMaxProfileBytes, "largest profile to open (or to read into a merge or diff), in bytes")
	cmd.Flags().IntVar(&maxMerge, "max-merge-profiles", ui.DefaultMaxMergeProfiles, "most profiles one merge or diff view reads")
	cmd.Flags().BoolVar(&localFiles, "local-files", false, "let pprof's source and disassembly views read the files a profile names from this disk (default: only when listening on loopback)")
	return cmd
}

// uiListenAddr checks --listen and puts loopback where it names no host.
func uiListenAddr(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("--listen %q: want HOST:PORT, e.g. 127.0.0.1:8080: %w", listen, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// serveUI serves h on ln until ctx ends (a signal), then shuts down gracefully.
func serveUI(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	srv, err := ui.NewServer(ui.ServerConfig{Listener: ln, Handler: h, Logger: log})
	if err != nil {
		ln.Close()
		return fmt.Errorf("kprof ui: %w", err)
	}
	if err := lifecycle.Run(ctx, srv, uiShutdownTimeout); err != nil {
		return fmt.Errorf("kprof ui: %w", err)
	}
	return nil
}
