// Command merge measures `kprof profiles merge` of many heap profiles next to its
// peer, `go tool pprof -proto` of the same files, side by side in one run.
//
// It serves the sample app in-process, fetches -distinct heap profiles of it (the
// background load and a /load?mem allocation between fetches make them differ), and
// writes -n files cycling through them. Then it runs, as child processes and
// alternating their order each round, (A) the kprof binary built from this tree:
// `kprof profiles merge DIR --type heap -o OUT`, and (B) the pprof binary that `go tool
// pprof` runs: `pprof -proto -output OUT FILE...`. It prints the wall time (median of
// -rounds) and the peak RSS (the child's ru_maxrss) of both and the ratios A/B, and
// checks that both outputs have the same total of every sample type. The kprof
// binary carries the operator's and the agent's dependencies, so its RSS at rest
// (`kprof version`) is printed too. It asserts nothing about speed.
//
// Usage (from the repository root):
//
//	go run ./bench/merge [-n 1000] [-distinct 20] [-rounds 3]
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/kprof/kprof/examples/sample-app/app"
	"github.com/kprof/kprof/internal/profdiff"
)

func main() { os.Exit(run()) }

func run() int {
	n := flag.Int("n", 1000, "heap profile files to merge")
	distinct := flag.Int("distinct", 20, "distinct heap profiles fetched (the files cycle through them)")
	rounds := flag.Int("rounds", 3, "measured runs of each side")
	flag.Parse()
	if *n < 1 || *distinct < 1 || *rounds < 1 {
		fmt.Fprintln(os.Stderr, "merge: -n, -distinct and -rounds must be positive")
		return 2
	}
	if err := bench(context.Background(), *n, *distinct, *rounds, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "merge:", err)
		return 1
	}
	return 0
}

func bench(ctx context.Context, n, distinct, rounds int, out io.Writer) error {
	work, err := os.MkdirTemp("", "kprof-bench-merge-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(work) }()
	profiles, err := fetchHeapProfiles(ctx, distinct)
	if err != nil {
		return err
	}
	dir := filepath.Join(work, "profiles")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files := make([]string, n)
	var bytesTotal int
	for i := range n {
		files[i] = filepath.Join(dir, fmt.Sprintf("p%05d_heap.pb.gz", i))
		b := profiles[i%len(profiles)]
		bytesTotal += len(b)
		if err := os.WriteFile(files[i], b, 0o644); err != nil {
			return err
		}
	}
	kprof := filepath.Join(work, "kprof")
	if err := command(ctx, "go", "build", "-o", kprof, "./cmd/kprof").Run(); err != nil {
		return fmt.Errorf("go build ./cmd/kprof (run from the repository root): %w", err)
	}
	pprofPath, err := command(ctx, "go", "tool", "-n", "pprof").Output()
	if err != nil {
		return fmt.Errorf("go tool -n pprof: %w", err)
	}
	pprof := strings.TrimSpace(string(pprofPath))
	outA, outB := filepath.Join(work, "a.pb.gz"), filepath.Join(work, "b.pb.gz")
	sides := []struct {
		name string
		args []string
		out  string
	}{
		{"kprof profiles merge", []string{kprof, "profiles", "merge", dir, "--type", "heap", "-o", outA}, outA},
		{"go tool pprof -proto", append([]string{pprof, "-proto", "-output", outB}, files...), outB},
	}
	times := make([][]time.Duration, 2)
	rss := make([]int64, 2)
	for r := range rounds {
		order := []int{0, 1}
		if r%2 == 1 {
			order = []int{1, 0}
		}
		for _, i := range order {
			d, maxRSS, err := measure(ctx, sides[i].args)
			if err != nil {
				return fmt.Errorf("%s: %w", sides[i].name, err)
			}
			times[i] = append(times[i], d)
			rss[i] = max(rss[i], maxRSS)
		}
	}
	if err := sameTotals(outA, outB); err != nil {
		return err
	}
	_, floor, err := measure(ctx, []string{kprof, "version"})
	if err != nil {
		return fmt.Errorf("kprof version: %w", err)
	}
	ta, tb := median(times[0]), median(times[1])
	fmt.Fprintf(out, "merge of %d heap profiles (%d distinct, %d bytes), median of %d runs\n", n, distinct, bytesTotal, rounds)
	fmt.Fprintf(out, "  %-22s %10s  peak RSS %6.1f MiB\n", sides[0].name, ta.Round(time.Millisecond), float64(rss[0])/(1<<20))
	fmt.Fprintf(out, "  %-22s %10s  peak RSS %6.1f MiB\n", sides[1].name, tb.Round(time.Millisecond), float64(rss[1])/(1<<20))
	fmt.Fprintf(out, "  ratio kprof/pprof: time %.2fx, peak RSS %.2fx; outputs have equal totals\n",
		float64(ta)/float64(tb), float64(rss[0])/float64(rss[1]))
	fmt.Fprintf(out, "  (the kprof binary at rest, kprof version: peak RSS %.1f MiB; the merge adds %.1f MiB)\n",
		float64(floor)/(1<<20), float64(rss[0]-floor)/(1<<20))
	return nil
}

func command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = os.Stderr
	return cmd
}

// measure runs args and returns its wall time and peak RSS in bytes.
func measure(ctx context.Context, args []string) (time.Duration, int64, error) {
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Env = append(os.Environ(), "PPROF_TMPDIR="+os.TempDir())
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, 0, fmt.Errorf("%w\n%s", err, stderr.String())
	}
	d := time.Since(start)
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, 0, errors.New("no rusage")
	}
	return d, ru.Maxrss << 10, nil // Linux reports KiB
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func sameTotals(a, b string) error {
	pa, err := profdiff.ReadProfile(a, 1<<30)
	if err != nil {
		return err
	}
	pb, err := profdiff.ReadProfile(b, 1<<30)
	if err != nil {
		return err
	}
	ta, tb := map[string]int64{}, map[string]int64{}
	for _, s := range pa.Sample {
		for i, v := range s.Value {
			ta[pa.SampleType[i].Type] += v
		}
	}
	for _, s := range pb.Sample {
		for i, v := range s.Value {
			tb[pb.SampleType[i].Type] += v
		}
	}
	for k, v := range tb {
		if ta[k] != v {
			return fmt.Errorf("outputs differ: %s total %d (kprof) vs %d (pprof)", k, ta[k], v)
		}
	}
	return nil
}

// fetchHeapProfiles serves the sample app on a loopback port and fetches n heap profiles.
func fetchHeapProfiles(ctx context.Context, n int) ([][]byte, error) {
	a, err := app.New(app.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer func() { _ = srv.Close() }()
	bg, stop := context.WithCancel(ctx)
	defer stop()
	go a.RunBackgroundLoad(bg)
	client := &http.Client{Timeout: 30 * time.Second}
	base := "http://" + ln.Addr().String()
	get := func(path string) ([]byte, error) {
		resp, err := client.Get(base + path)
		if err != nil {
			return nil, err
		}
		defer func() { _ = resp.Body.Close() }()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		return io.ReadAll(resp.Body)
	}
	out := make([][]byte, 0, n)
	for i := range n {
		if _, err := get(fmt.Sprintf("/load?mem=%dKiB&hold=1ms", 64*(i+1))); err != nil {
			return nil, err
		}
		b, err := get("/debug/pprof/heap")
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}
