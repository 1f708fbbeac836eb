// Command list measures `kprof profiles list` of many profiles in S3 next to its
// peer, a bare ListObjectsV2 pager of the same prefix, side by side in one run.
//
// It starts MinIO (hack/install-minio.sh) with its data in a directory that is kept
// (-data, by default under $KPROF_CACHE), and fills a bucket with -n profiles laid
// out as the operator's S3 store writes them: the store's own Put under the default
// key template, so every profile is one object with its user metadata plus one
// index marker. The fill resumes where it stopped and is skipped when the bucket is
// full already. Then it runs, as child processes and rotating their order each
// round, (A) the kprof binary built from this tree: `kprof profiles list --store
// s3://BUCKET/kprof --s3-endpoint ... -o json` and the same with `-o name`, both
// with stdout on /dev/null, and (B) bench/list/pager, which pages through the same
// prefix with the same AWS SDK and does nothing with the keys. It prints the wall
// time (median, min and max of -rounds), the CPU time (median) and the peak RSS
// (the child's ru_maxrss, largest of the rounds) of each, and the ratios A/B. The
// outputs are checked first: kprof lists -n profiles, all from their markers; the
// pager sees twice as many keys. It asserts nothing about speed.
//
// Usage (from the repository root):
//
//	go run ./bench/list [-n 100000] [-rounds 5] [-concurrency 16] [-data DIR]
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/kprof/kprof/internal/index"
	"github.com/kprof/kprof/internal/storage/s3"
	"github.com/kprof/kprof/internal/testenv"
)

const (
	bucket = "kprof-bench-list"
	// setupTimeout bounds starting MinIO; fillTimeout the whole fill.
	setupTimeout = time.Minute
	fillTimeout  = 3 * time.Hour
	// runTimeout bounds one measured child process.
	runTimeout = 10 * time.Minute
)

func main() { os.Exit(run()) }

type options struct {
	n, rounds, concurrency int
	data, minio            string
}

func run() int {
	var o options
	flag.IntVar(&o.n, "n", 100000, "profiles in the bucket")
	flag.IntVar(&o.rounds, "rounds", 5, "measured runs of each side")
	flag.IntVar(&o.concurrency, "concurrency", 16, "profiles written at a time while filling the bucket")
	flag.StringVar(&o.data, "data", "", "MinIO data directory, kept for the next run (default $KPROF_CACHE/bench-list/"+layoutVersion+"-n<N>)")
	flag.StringVar(&o.minio, "minio", testenv.MinIOPath(), "MinIO binary")
	flag.Parse()
	if o.n < 1 || o.rounds < 1 || o.concurrency < 1 {
		fmt.Fprintln(os.Stderr, "list: -n, -rounds and -concurrency must be positive")
		return 2
	}
	if o.data == "" {
		o.data = filepath.Join(testenv.CacheDir(), "bench-list", fmt.Sprintf("%s-n%d", layoutVersion, o.n))
	}
	if err := bench(context.Background(), o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "list:", err)
		return 1
	}
	return 0
}

// side is one measured command.
type side struct {
	name  string
	args  []string
	wall  []time.Duration
	cpu   []time.Duration
	rss   int64
	isRef bool // the peer the others are compared with
}

func bench(ctx context.Context, o options, out io.Writer) error {
	m, err := testenv.NewMinIOIn(o.minio, o.data)
	if err != nil {
		return err
	}
	defer func() { _ = m.Close() }()
	sctx, cancel := context.WithTimeout(ctx, setupTimeout)
	err = m.Launch(sctx)
	cancel()
	if err != nil {
		return err
	}
	st, err := s3.New(ctx, s3.Config{Bucket: bucket, Endpoint: m.Endpoint, Region: m.Region,
		Credentials: &s3.Credentials{AccessKeyID: m.AccessKey, SecretAccessKey: m.SecretKey}})
	if err != nil {
		return err
	}
	fctx, cancel := context.WithTimeout(ctx, fillTimeout)
	err = fill(fctx, st, m.Client(), bucket, o.n, o.concurrency, os.Stderr)
	cancel()
	if err != nil {
		return err
	}

	work, err := os.MkdirTemp("", "kprof-bench-list-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(work) }()
	kprof, pager := filepath.Join(work, "kprof"), filepath.Join(work, "pager")
	for bin, pkg := range map[string]string{kprof: "./cmd/kprof", pager: "./bench/list/pager"} {
		if err := command(ctx, "go", "build", "-o", bin, pkg).Run(); err != nil {
			return fmt.Errorf("go build %s (run from the repository root): %w", pkg, err)
		}
	}
	// Both sides take credentials and region from the environment (the AWS default
	// chain) and nothing from the user's own AWS files or the instance metadata.
	env := append(os.Environ(), "AWS_ACCESS_KEY_ID="+m.AccessKey, "AWS_SECRET_ACCESS_KEY="+m.SecretKey,
		"AWS_REGION="+m.Region, "AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE="+filepath.Join(work, "none"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(work, "none"))
	store := "s3://" + bucket + "/" + keyPrefix
	list := []string{kprof, "profiles", "list", "--store", store, "--s3-endpoint", m.Endpoint}
	sides := []*side{
		{name: "kprof profiles list -o json", args: append(slices.Clone(list), "-o", "json")},
		{name: "kprof profiles list -o name", args: append(slices.Clone(list), "-o", "name")},
		{name: "bare ListObjectsV2 pager", args: []string{pager, "-endpoint", m.Endpoint, "-bucket", bucket, "-prefix", keyPrefix + "/"}, isRef: true},
	}
	if _, err := os.Stat(gnuTime); err != nil {
		return fmt.Errorf("peak RSS is read with GNU time (apt-get install -y time): %w", err)
	}
	// The first run of each side is a warm-up whose output is checked.
	if err := checkKprof(ctx, sides[0].args, env, o.n); err != nil {
		return err
	}
	if err := checkPager(ctx, sides[2].args, env, 2*o.n); err != nil {
		return err
	}
	load := loadAvg()
	for r := range o.rounds {
		for j := range sides {
			s := sides[(r+j)%len(sides)]
			wall, cpu, rss, err := measure(ctx, s.args, env, work)
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			s.wall, s.cpu, s.rss = append(s.wall, wall), append(s.cpu, cpu), max(s.rss, rss)
		}
	}
	_, _, floor, err := measure(ctx, []string{kprof, "version"}, env, work)
	if err != nil {
		return fmt.Errorf("kprof version: %w", err)
	}
	report(out, o, sides, floor, load, loadAvg())
	return nil
}

func report(out io.Writer, o options, sides []*side, floor int64, loadBefore, loadAfter string) {
	fmt.Fprintf(out, "list of %d profiles (%d keys with their index markers) in MinIO, %d rounds, order rotated each round\n",
		o.n, 2*o.n, o.rounds)
	fmt.Fprintf(out, "%s/%s, %d CPUs, load average %s before and %s after the rounds\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), loadBefore, loadAfter)
	fmt.Fprintf(out, "  %-28s %10s %21s %10s %14s\n", "", "wall p50", "(min – max)", "CPU p50", "peak RSS")
	var ref *side
	for _, s := range sides {
		if s.isRef {
			ref = s
		}
		fmt.Fprintf(out, "  %-28s %10s %21s %10s %10.1f MiB\n", s.name, ms(median(s.wall)),
			"("+ms(slices.Min(s.wall))+" – "+ms(slices.Max(s.wall))+")", ms(median(s.cpu)), mib(s.rss))
	}
	for _, s := range sides {
		if s == ref {
			continue
		}
		fmt.Fprintf(out, "  ratio %s / pager: wall %.2fx (median of the per-round ratios %.2fx), CPU %.2fx, peak RSS %.2fx\n",
			strings.TrimPrefix(s.name, "kprof profiles list "), float64(median(s.wall))/float64(median(ref.wall)),
			medianRatio(s.wall, ref.wall), float64(median(s.cpu))/float64(median(ref.cpu)), float64(s.rss)/float64(ref.rss))
	}
	fmt.Fprintf(out, "  (the kprof binary at rest, kprof version: peak RSS %.1f MiB)\n", mib(floor))
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }
func mib(b int64) float64       { return float64(b) / (1 << 20) }

func command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = os.Stderr
	return cmd
}

// output runs args once with env, within runTimeout, and returns its standard output.
func output(ctx context.Context, args, env []string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, runTimeout)
	defer cancel()
	cmd := command(ctx, args[0], args[1:]...)
	cmd.Env = env
	b, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", strings.Join(args, " "), err)
	}
	return b, nil
}

// checkKprof runs kprof's listing once and checks that it lists n profiles, each
// from its index marker and without an error.
func checkKprof(ctx context.Context, args, env []string, n int) error {
	b, err := output(ctx, args, env)
	if err != nil {
		return err
	}
	var es []index.Entry
	if err := json.Unmarshal(b, &es); err != nil {
		return fmt.Errorf("kprof profiles list -o json: %w", err)
	}
	if len(es) != n {
		return fmt.Errorf("kprof profiles list listed %d profiles, want %d", len(es), n)
	}
	for _, e := range es {
		if e.Source != "marker" || e.Error != "" || e.Type == "" {
			return fmt.Errorf("kprof profiles list: %s: source %q, type %q, error %q; want its metadata from its marker", e.ID, e.Source, e.Type, e.Error)
		}
	}
	return nil
}

// checkPager runs the pager once and checks that it saw keys keys.
func checkPager(ctx context.Context, args, env []string, keys int) error {
	b, err := output(ctx, args, env)
	if err != nil {
		return err
	}
	var got int
	if _, err := fmt.Sscanf(string(b), "%d keys", &got); err != nil || got != keys {
		return fmt.Errorf("pager printed %q, want %d keys", strings.TrimSpace(string(b)), keys)
	}
	return nil
}

// loadAvg is the first three fields of /proc/loadavg ("?" elsewhere).
func loadAvg() string {
	f, err := os.Open("/proc/loadavg")
	if err != nil {
		return "?"
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	if fs := strings.Fields(line); len(fs) >= 3 {
		return strings.Join(fs[:3], " ")
	}
	return "?"
}
