// Command upload measures what kprof's path from a pprof endpoint to S3 costs next to
// the bare minimum, side by side in one run.
//
// (A) kprof: the capture engine's CaptureNow of one heap profile (fetch, size limits,
// pprof validation) into the spool (Put returns once the profile is fsynced on disk),
// then the spool's upload through the s3 store (PutObject with a SHA-256 checksum,
// HeadObject verification, removal from the spool), timed until OnUploaded confirms it.
//
// (B) baseline: a bare HTTP GET of the same endpoint and a bare PutObject of the same
// bytes with the AWS SDK.
//
// A and B alternate, their order swapped every iteration (AB BA AB ...), so drift of the
// machine hits both alike. It prints p50, p90 and mean per operation for both and their
// ratio A/B, plus the bytes per profile. It asserts nothing about speed.
//
// Usage (from the repository root; MinIO from hack/install-minio.sh is started on a free
// loopback port unless --endpoint is given, with credentials from the AWS default chain):
//
//	go run ./bench/upload [-n 200] [-warmup 10] [-endpoint http://127.0.0.1:9000 -bucket kprof-bench]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"
)

func main() { os.Exit(run()) }

type options struct {
	n, warmup        int
	endpoint, bucket string
	region, minio    string
	spoolDir         string
}

func run() int {
	var o options
	flag.IntVar(&o.n, "n", 200, "measured iterations of each path")
	flag.IntVar(&o.warmup, "warmup", 10, "unmeasured iterations of each path first")
	flag.StringVar(&o.endpoint, "endpoint", "", "S3 endpoint to use instead of starting MinIO (credentials: the AWS default chain)")
	flag.StringVar(&o.bucket, "bucket", "kprof-bench", "bucket, created when missing")
	flag.StringVar(&o.region, "region", "us-east-1", "region of the bucket")
	flag.StringVar(&o.minio, "minio", defaultMinIOPath(), "MinIO binary started when --endpoint is empty")
	flag.StringVar(&o.spoolDir, "spool", "", "spool directory (default: a new temp dir, removed at the end)")
	flag.Parse()
	if o.n < 1 || o.warmup < 0 {
		fmt.Fprintln(os.Stderr, "upload: -n must be positive and -warmup not negative")
		return 2
	}
	ctx := context.Background()
	if err := bench(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "upload:", err)
		return 1
	}
	return 0
}

func bench(ctx context.Context, o options, out io.Writer) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	env, err := setup(ctx, o, log)
	if err != nil {
		return err
	}
	defer env.close()

	fmt.Fprintf(out, "bench/upload: heap profile of the sample app over loopback HTTP to %s, spool in %s\n", env.where, env.spoolDir)
	fmt.Fprintf(out, "%d iterations per path after %d warm-up, interleaved (order swapped every iteration)\n\n", o.n, o.warmup)

	var a, ack, b samples
	var aBytes, bBytes int64
	for i := range o.warmup + o.n {
		measured := i >= o.warmup
		order := []bool{true, false}
		if i%2 == 1 {
			order = []bool{false, true}
		}
		for _, kprof := range order {
			if kprof {
				total, acked, n, err := env.kprofOnce(ctx)
				if err != nil {
					return fmt.Errorf("iteration %d, kprof path: %w", i, err)
				}
				if measured {
					a, ack, aBytes = append(a, total), append(ack, acked), aBytes+int64(n)
				}
				continue
			}
			total, n, err := env.bareOnce(ctx, i)
			if err != nil {
				return fmt.Errorf("iteration %d, bare path: %w", i, err)
			}
			if measured {
				b, bBytes = append(b, total), bBytes+int64(n)
			}
		}
	}
	report(out, a, ack, b, aBytes/int64(o.n), bBytes/int64(o.n))
	return nil
}

// report prints the table and the one-line ratio.
func report(out io.Writer, a, ack, b samples, aBytes, bBytes int64) {
	row := func(name string, s samples) {
		fmt.Fprintf(out, "%-38s %9s %9s %9s\n", name, ms(s.quantile(0.5)), ms(s.quantile(0.9)), ms(s.mean()))
	}
	fmt.Fprintf(out, "%-38s %9s %9s %9s\n", "per profile", "p50", "p90", "mean")
	row("A kprof capture+spool+upload", a)
	row("  of which capture until spool ack", ack)
	row("B bare GET+PutObject", b)
	fmt.Fprintf(out, "%-38s %8.2fx %8.2fx %8.2fx\n", "ratio A/B",
		ratio(a.quantile(0.5), b.quantile(0.5)), ratio(a.quantile(0.9), b.quantile(0.9)), ratio(a.mean(), b.mean()))
	fmt.Fprintf(out, "bytes per profile: A %d, B %d (mean)\n\n", aBytes, bBytes)
	fmt.Fprintf(out, "kprof capture+spool+upload: p50 %s; bare GET+PutObject: p50 %s; ratio %.2fx\n",
		ms(a.quantile(0.5)), ms(b.quantile(0.5)), ratio(a.quantile(0.5), b.quantile(0.5)))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
