// Command sample-app is the Go service that kprof profiles in examples and tests. It
// serves net/http/pprof under /debug/pprof/, /healthz, and /load, which burns CPU in
// burnCPU and holds memory allocated in allocateMemory on request:
//
//	curl 'http://127.0.0.1:6060/load?cpu=30s&workers=2'
//	curl 'http://127.0.0.1:6060/load?mem=256MiB&hold=1m'
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/kprof/kprof/examples/sample-app/app"
)

func main() { os.Exit(run()) }

func run() int {
	fs := flag.NewFlagSet("sample-app", flag.ContinueOnError)
	listen := fs.String("listen", defaultListen(), "address to serve on (default :$PORT when PORT is set)")
	background := fs.Bool("background-load", false, "keep a small steady CPU burn so profiles are never empty")
	mutexFraction := fs.Int("mutex-profile-fraction", 5, "runtime.SetMutexProfileFraction (0 disables the mutex profile)")
	blockRate := fs.Int("block-profile-rate", 10_000, "runtime.SetBlockProfileRate in nanoseconds (0 disables the block profile)")
	shutdownTimeout := fs.Duration("shutdown-timeout", app.DefaultShutdownTimeout, "how long in-flight requests may run after SIGTERM")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	runtime.SetMutexProfileFraction(*mutexFraction)
	runtime.SetBlockProfileRate(*blockRate)

	a, err := app.New(app.Config{Logger: log, ShutdownTimeout: *shutdownTimeout})
	if err != nil {
		log.Error("invalid configuration", "err", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *background {
		go a.RunBackgroundLoad(ctx)
	}
	if err := a.ListenAndServe(ctx, *listen); err != nil {
		log.Error("sample-app stopped", "err", err)
		return 1
	}
	return 0
}

// defaultListen is loopback for a developer machine, or all interfaces on $PORT in a container.
func defaultListen() string {
	if p := os.Getenv("PORT"); p != "" {
		return fmt.Sprintf(":%s", p)
	}
	return "127.0.0.1:6060"
}
