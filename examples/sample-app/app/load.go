package app

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of /load, so that a typo cannot take the host down.
const (
	MaxLoadDuration = 10 * time.Minute
	MaxWorkers      = 64
	MaxMemoryBytes  = 2 << 30 // total held by all /load?mem requests at once
	defaultHold     = 10 * time.Second
	memChunk        = 1 << 20
)

// loadRequest is a validated /load query.
type loadRequest struct {
	cpu     time.Duration
	workers int
	mem     int64
	hold    time.Duration
}

// parseLoadRequest validates a /load query: cpu=DURATION[&workers=N] and/or mem=BYTES[&hold=DURATION].
func parseLoadRequest(q url.Values) (loadRequest, error) {
	for k, vs := range q {
		switch k {
		case "cpu", "workers", "mem", "hold":
		default:
			return loadRequest{}, fmt.Errorf("unknown parameter %q (want cpu, workers, mem, hold)", k)
		}
		if len(vs) > 1 {
			return loadRequest{}, fmt.Errorf("%s: given %d times, want once", k, len(vs))
		}
	}
	req := loadRequest{workers: 1, hold: defaultHold}
	var err error
	if v := q.Get("cpu"); v != "" {
		if req.cpu, err = parseBoundedDuration("cpu", v); err != nil {
			return loadRequest{}, err
		}
	}
	if v := q.Get("workers"); v != "" {
		if req.cpu == 0 {
			return loadRequest{}, fmt.Errorf("workers: only valid together with cpu")
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxWorkers {
			return loadRequest{}, fmt.Errorf("workers: must be an integer from 1 to %d, got %q", MaxWorkers, v)
		}
		req.workers = n
	}
	if v := q.Get("mem"); v != "" {
		if req.mem, err = parseBytes(v); err != nil {
			return loadRequest{}, fmt.Errorf("mem: %w", err)
		}
		if req.mem <= 0 || req.mem > MaxMemoryBytes {
			return loadRequest{}, fmt.Errorf("mem: must be from 1 byte to 2GiB, got %q", v)
		}
	}
	if v := q.Get("hold"); v != "" {
		if req.mem == 0 {
			return loadRequest{}, fmt.Errorf("hold: only valid together with mem")
		}
		if req.hold, err = parseBoundedDuration("hold", v); err != nil {
			return loadRequest{}, err
		}
	}
	if req.cpu == 0 && req.mem == 0 {
		return loadRequest{}, fmt.Errorf("want cpu=DURATION[&workers=N] and/or mem=BYTES[&hold=DURATION]")
	}
	return req, nil
}

func parseBoundedDuration(field, v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s: must be a duration such as 30s or 2m, got %q", field, v)
	}
	if d <= 0 || d > MaxLoadDuration {
		return 0, fmt.Errorf("%s: must be greater than 0 and at most %s, got %s", field, MaxLoadDuration, d)
	}
	return d, nil
}

// parseBytes accepts a plain byte count or one with a KiB, MiB or GiB suffix.
func parseBytes(v string) (int64, error) {
	mult := int64(1)
	num := v
	for _, s := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if strings.HasSuffix(v, s.suffix) {
			num, mult = strings.TrimSuffix(v, s.suffix), s.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("must be a byte count such as 1048576 or 64MiB, got %q", v)
	}
	return n * mult, nil
}

// handleLoad generates the requested load for as long as asked or until the client
// goes away. It answers "started" once the load runs (memory allocated, CPU workers
// launched) and "done" when it ended.
func (a *App) handleLoad(w http.ResponseWriter, r *http.Request) {
	req, err := parseLoadRequest(r.URL.Query())
	if err != nil {
		http.Error(w, "bad load request: "+err.Error(), http.StatusBadRequest)
		return
	}
	if req.mem > 0 {
		if !a.reserveMemory(req.mem) {
			http.Error(w, fmt.Sprintf("memory budget exceeded: %d bytes already held, at most %d at once",
				a.heldBytes.Load(), MaxMemoryBytes), http.StatusTooManyRequests)
			return
		}
		defer a.heldBytes.Add(-req.mem)
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(a.loads, cancel)()
	log := a.log.With("cpu", req.cpu, "workers", req.workers, "memBytes", req.mem, "hold", req.hold)
	log.Info("load started")
	start := time.Now()

	var wg sync.WaitGroup
	if req.cpu > 0 {
		deadline := start.Add(req.cpu)
		for range req.workers {
			wg.Go(func() { burnCPU(ctx, deadline) })
		}
	}
	var held [][]byte
	if req.mem > 0 {
		held = allocateMemory(req.mem)
	}

	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = fmt.Fprintf(w, "started cpu=%s workers=%d mem=%d hold=%s\n", req.cpu, req.workers, req.mem, req.hold)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	if req.mem > 0 {
		holdMemory(ctx, held, req.hold)
	}
	wg.Wait()

	if err := ctx.Err(); err != nil {
		log.Info("load canceled", "after", time.Since(start).Round(time.Millisecond), "reason", err)
		return
	}
	log.Info("load done", "took", time.Since(start).Round(time.Millisecond))
	_, _ = fmt.Fprintln(w, "done")
}

func (a *App) reserveMemory(n int64) bool {
	for {
		cur := a.heldBytes.Load()
		if cur+n > MaxMemoryBytes {
			return false
		}
		if a.heldBytes.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

// sink keeps burnCPU's arithmetic from being optimised away.
var sink atomic.Uint64

// burnCPU spins one core until deadline or until ctx is done. Its name is what a CPU
// profile of this app should show.
//
//go:noinline
func burnCPU(ctx context.Context, deadline time.Time) {
	x := uint64(time.Now().UnixNano()) | 1
	for i := 0; ; i++ {
		// xorshift64: cheap, branch-free work that stays in this frame.
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		if i&0xffff == 0 && (ctx.Err() != nil || !time.Now().Before(deadline)) {
			break
		}
	}
	sink.Add(x)
}

// allocateMemory allocates n bytes in chunks and touches every page so the memory is
// resident. Its name is what a heap profile of this app should show.
//
//go:noinline
func allocateMemory(n int64) [][]byte {
	chunks := make([][]byte, 0, (n+memChunk-1)/memChunk)
	for n > 0 {
		size := min(n, memChunk)
		b := make([]byte, size)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		chunks = append(chunks, b)
		n -= size
	}
	return chunks
}

// holdMemory keeps chunks reachable for d or until ctx is done.
func holdMemory(ctx context.Context, chunks [][]byte, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	runtime.KeepAlive(chunks)
}
