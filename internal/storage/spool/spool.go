// Package spool is a durable local queue in front of a remote storage.Store. A
// profile is acknowledged (Put returns nil) once it is on local disk, and it is
// deleted only after the remote confirmed the upload. The only way a spooled
// profile disappears without upload is bounded eviction (MaxBytes, MaxAge, or a
// corrupt entry), which is counted, logged and reported to OnEvicted.
//
// Delivery is at least once: a crash (or a lost response) between the remote's
// success and the local delete uploads the entry again under the same key on the
// next Start. Remote stores overwrite by key (an S3 PUT replaces the object), so
// the bucket still holds exactly one object per key, with the same bytes.
// Entries of the same key are uploaded one at a time, oldest first, so the
// newest Put of a key is the one that stays.
//
// Retries: a failed entry is retried after an exponential backoff with jitter
// (lifecycle.Backoff), per entry. When the remote looks down, that is when the latest
// attempts all failed with EndpointUnreachable, InvalidCredentials,
// NoSuchBucket or AccessDenied, the spool backs off globally: at most one
// upload is in flight, and it starts only after a shared backoff that grows with
// every such failure in a row (same formula as the per-entry backoff). Any
// success, a Check that succeeds, or a failure of another kind ends the global
// backoff. After an outage of two or more failures in a row ends, entries whose
// last failure was an outage kind are retried at once instead of waiting out
// their own backoff.
package spool

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kprof/kprof/internal/lifecycle"
	"github.com/kprof/kprof/internal/storage"
	"github.com/kprof/kprof/internal/storage/durable"
)

var _ storage.Store = (*Spool)(nil)

// errShutdown is the cause of cancelling in-flight uploads at Shutdown.
var errShutdown = fmt.Errorf("spool shut down: %w", context.Canceled)

// Spool is a storage.Store that spools profiles on disk and uploads them to a
// remote store in the background. It is safe for concurrent use.
type Spool struct {
	cfg     Config
	log     *slog.Logger
	store   string          // Remote.String(), the metrics label
	checker storage.Checker // nil when Remote cannot Check
	// ageEvery is how often Start's housekeeping evicts expired entries.
	ageEvery time.Duration

	// hardCtx is the parent of every upload and Check; Shutdown cancels it when
	// it stops waiting.
	hardCtx    context.Context
	hardCancel context.CancelCauseFunc
	stopCh     chan struct{} // closed when Shutdown starts
	wg         sync.WaitGroup
	exited     chan struct{} // closed when the goroutines of Start have returned

	mu      sync.Mutex
	entries map[string]*entry // by id
	order   []*entry          // oldest first, by (enqueued, seq)
	// keyCount counts entries per key, for uploading one key at a time.
	keyCount map[string]int
	// bytes is the data size of every entry in entries; claimedBytes the part
	// being evicted; reservedBytes the size of Puts being written.
	bytes, claimedBytes, reservedBytes int64
	nextSeq                            uint64
	inFlight                           int
	guard                              lifecycle.Guard
	changed                            chan struct{} // closed and replaced on every change
	remote                             remoteState

	healthMu  sync.Mutex // serializes health updates and OnHealth calls
	healthSeq uint64     // attempt sequence of the latest applied health update
	health    atomic.Pointer[healthValue]
}

type healthValue struct{ err error }

// entry is one spooled profile. Fields other than the immutable ones are guarded
// by Spool.mu.
type entry struct {
	id       string
	key      string
	meta     storage.Meta
	size     int64
	sum      [32]byte
	enqueued time.Time
	seq      uint64

	attempts   int
	notBefore  time.Time // real clock: earliest next attempt
	lastOutage bool      // the last attempt failed with an outage kind
	inFlight   bool      // being uploaded
	claimed    bool      // being evicted
}

func (e *entry) before(o *entry) bool {
	if !e.enqueued.Equal(o.enqueued) {
		return e.enqueued.Before(o.enqueued)
	}
	return e.seq < o.seq
}

// New fills in cfg's defaults, validates it, creates Dir and loads the entries already in it: stale
// temporary files are removed, corrupt entries and entries beyond MaxAge or
// MaxBytes are evicted (reported like any eviction). Loading here rather than in
// Start makes Pending and the MaxBytes bound right from the first Put. Nothing
// is uploaded before Start.
func New(cfg Config) (*Spool, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := durable.MkdirAllPath(cfg.Dir, dirPerm); err != nil {
		return nil, fmt.Errorf("create spool directory %s: %w", cfg.Dir, err)
	}
	hardCtx, hardCancel := context.WithCancelCause(context.Background())
	store := cfg.Remote.String()
	s := &Spool{
		cfg:        cfg,
		log:        cfg.Logger.With("logger", "spool").With("store", store),
		store:      store,
		ageEvery:   min(time.Minute, max(time.Second, cfg.MaxAge/10)),
		hardCtx:    hardCtx,
		hardCancel: hardCancel,
		stopCh:     make(chan struct{}),
		exited:     make(chan struct{}),
		entries:    map[string]*entry{},
		keyCount:   map[string]int{},
		changed:    make(chan struct{}),
	}
	s.checker, _ = cfg.Remote.(storage.Checker)
	if err := cfg.Metrics.register(store, s); err != nil {
		hardCancel(errShutdown)
		return nil, fmt.Errorf("create spool %s: %w", cfg.Dir, err)
	}
	if err := s.load(); err != nil {
		cfg.Metrics.unregister(store, s)
		hardCancel(errShutdown)
		return nil, fmt.Errorf("load spool %s: %w", cfg.Dir, err)
	}
	s.evictExpired()
	s.evictOverLimit()
	n, b, _ := s.stats()
	s.log.Info("spool loaded", "dir", cfg.Dir, "entries", n, "bytes", b)
	return s, nil
}

// String names the spool for logs and status.
func (s *Spool) String() string { return "spool(" + s.store + ")" }

// Location implements storage.Locator: where the remote store keeps key once uploaded.
func (s *Spool) Location(key string) string {
	if l, ok := s.cfg.Remote.(storage.Locator); ok {
		return l.Location(key)
	}
	return ""
}

// Start begins uploading, oldest entry first, with Workers workers, and the
// periodic age eviction and health probe. It returns at once; ctx is not kept
// (Shutdown stops the spool).
func (s *Spool) Start(ctx context.Context) error {
	s.mu.Lock()
	if err := s.guard.Start(ctx); err != nil {
		s.mu.Unlock()
		return fmt.Errorf("start %s: %w", s, err)
	}
	s.wg.Add(s.cfg.Workers + 1)
	n, b := len(s.entries), s.bytes
	s.mu.Unlock()

	s.evictExpired()
	for range s.cfg.Workers {
		go s.worker()
	}
	go s.housekeeping()
	go func() {
		s.wg.Wait()
		close(s.exited)
	}()
	s.log.Info("spool started", "entries", n, "bytes", b, "workers", s.cfg.Workers)
	return nil
}

// Shutdown stops starting uploads, lets those in flight finish until ctx is
// done, then cancels them and waits for the workers to return; cancelled entries
// stay on disk for the next Start. It is idempotent and safe without Start, and
// returns an error only when uploads had to be cancelled. The Remote must honour
// ctx cancellation for Shutdown to return. Put keeps working after Shutdown:
// entries are written to disk for the next Spool on Dir.
func (s *Spool) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	first := s.guard.Shutdown()
	if first {
		close(s.stopCh)
		s.broadcastLocked()
	}
	started := s.guard.Started()
	s.mu.Unlock()
	if first {
		s.cfg.Metrics.unregister(s.store, s)
	}
	if !started { // and never will be: Start refuses after Shutdown
		s.hardCancel(errShutdown)
		return nil
	}

	select { // workers already gone win over a ctx that is done too
	case <-s.exited:
	default:
		select {
		case <-s.exited:
		case <-ctx.Done():
			s.log.Info("spool shutdown deadline reached, cancelling in-flight uploads")
			s.hardCancel(errShutdown)
			<-s.exited
			return fmt.Errorf("shut down %s: in-flight uploads cancelled, their entries stay spooled: %w", s, context.Cause(ctx))
		}
	}
	s.hardCancel(errShutdown)
	if first {
		n, b, _ := s.stats()
		s.log.Info("spool stopped", "entries", n, "bytes", b)
	}
	return nil
}

// Flush waits until the spool is empty. It fails when ctx is done first, or when
// the spool is not running (not started, or shut down) while entries remain,
// saying how many remain.
func (s *Spool) Flush(ctx context.Context) error {
	for {
		s.mu.Lock()
		n, b := len(s.entries), s.bytes
		running := s.guard.Running()
		ch := s.changed
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		if !running {
			return fmt.Errorf("flush %s: %d entries (%d bytes) remain and the spool is not running", s, n, b)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("flush %s: %d entries (%d bytes) remain: %w", s, n, b, context.Cause(ctx))
		}
	}
}

// Pending returns how many entries, and how many bytes of profile data, wait
// for upload.
func (s *Spool) Pending() (entries int, bytes int64) {
	n, b, _ := s.stats()
	return n, b
}

// Health returns the remote's last known health: nil when healthy or not known
// yet, else the error of the latest upload attempt or Check.
func (s *Spool) Health() error {
	if h := s.health.Load(); h != nil {
		return h.err
	}
	return nil
}

// stats returns the entries, bytes and age of the oldest entry.
func (s *Spool) stats() (int, int64, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var age time.Duration
	if len(s.order) > 0 {
		age = max(0, s.cfg.Now().Sub(s.order[0].enqueued))
	}
	return len(s.entries), s.bytes, age
}

// Put writes the profile durably to the spool and wakes a worker; it returns nil
// once data and sidecar are on disk. It does not wait for the remote. To stay
// within MaxBytes it first evicts the oldest entries that are not being
// uploaded; a profile larger than MaxBytes, or one that cannot fit because the
// rest of the spool is being uploaded, is refused. A ctx done before the entry
// is committed leaves nothing behind.
func (s *Spool) Put(ctx context.Context, key string, data []byte, meta storage.Meta) error {
	if key == "" {
		return fmt.Errorf("%s: put: key is empty", s)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: put %s: %w", s, key, err)
	}
	size := int64(len(data))
	if size > s.cfg.MaxBytes {
		return fmt.Errorf("%s: put %s: profile of %d bytes exceeds the spool's MaxBytes %d", s, key, size, s.cfg.MaxBytes)
	}
	s.evictExpired()
	victims, err := s.reserve(size)
	if err != nil {
		return fmt.Errorf("%s: put %s: %w", s, key, err)
	}

	enqueued := s.cfg.Now().Round(0).UTC()
	meta.Labels = maps.Clone(meta.Labels)
	e := &entry{key: key, meta: meta, size: size, enqueued: enqueued}
	e.sum = sha256.Sum256(data)
	err = s.write(ctx, e, data)
	if err != nil {
		s.unreserve(size, victims)
		return fmt.Errorf("%s: put %s: %w", s, key, err)
	}

	s.mu.Lock()
	s.reservedBytes -= size
	s.addLocked(e)
	s.mu.Unlock()
	s.evict(victims, ReasonMaxBytes, nil)
	return nil
}

// write stores e durably and sets e.id.
func (s *Spool) write(ctx context.Context, e *entry, data []byte) error {
	id, err := newID(e.enqueued)
	if err != nil {
		return err
	}
	root, err := os.OpenRoot(s.cfg.Dir)
	if err != nil {
		return fmt.Errorf("open spool directory: %w", err)
	}
	defer root.Close()
	sc := &sidecar{
		Version:    sidecarVersion,
		Key:        e.key,
		Meta:       e.meta,
		Size:       e.size,
		SHA256:     fmt.Sprintf("%x", e.sum),
		EnqueuedAt: e.enqueued,
	}
	if err := writeEntry(root, id, data, sc, ctx.Err); err != nil {
		return err
	}
	e.id = id
	return nil
}

// reserve makes room for size more bytes: it claims the oldest entries that are
// not being uploaded until the spool fits MaxBytes, and reserves size.
func (s *Spool) reserve(size int64) ([]*entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	used := func() int64 { return s.bytes - s.claimedBytes + s.reservedBytes }
	var victims []*entry
	for _, e := range s.order {
		if used()+size <= s.cfg.MaxBytes {
			break
		}
		if e.inFlight || e.claimed {
			continue
		}
		s.claimLocked(e)
		victims = append(victims, e)
	}
	if used()+size > s.cfg.MaxBytes {
		s.unclaimLocked(victims)
		return nil, fmt.Errorf("spool full: %d bytes spooled, of which %d being uploaded, and %d being written leave no room for %d more within MaxBytes %d",
			s.bytes-s.claimedBytes, s.inFlightBytesLocked(), s.reservedBytes, size, s.cfg.MaxBytes)
	}
	s.reservedBytes += size
	return victims, nil
}

func (s *Spool) unreserve(size int64, victims []*entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reservedBytes -= size
	s.unclaimLocked(victims)
	s.broadcastLocked()
}

func (s *Spool) unclaimLocked(victims []*entry) {
	for _, e := range victims {
		e.claimed = false
		s.claimedBytes -= e.size
	}
}

func (s *Spool) inFlightBytesLocked() int64 {
	var n int64
	for _, e := range s.order {
		if e.inFlight {
			n += e.size
		}
	}
	return n
}

// addLocked indexes e and wakes the workers.
func (s *Spool) addLocked(e *entry) {
	s.nextSeq++
	e.seq = s.nextSeq
	s.entries[e.id] = e
	i, _ := slices.BinarySearchFunc(s.order, e, func(a, b *entry) int {
		if a.before(b) {
			return -1
		}
		return 1
	})
	s.order = slices.Insert(s.order, i, e)
	s.keyCount[e.key]++
	s.bytes += e.size
	s.broadcastLocked()
}

// dropLocked removes e from the index.
func (s *Spool) dropLocked(e *entry) {
	if _, ok := s.entries[e.id]; !ok {
		return
	}
	delete(s.entries, e.id)
	if i := slices.Index(s.order, e); i >= 0 {
		s.order = slices.Delete(s.order, i, i+1)
	}
	if s.keyCount[e.key]--; s.keyCount[e.key] <= 0 {
		delete(s.keyCount, e.key)
	}
	s.bytes -= e.size
	if e.claimed {
		s.claimedBytes -= e.size
	}
	if e.inFlight {
		e.inFlight = false
		s.inFlight--
	}
	s.broadcastLocked()
}

// broadcastLocked wakes everyone waiting for a change (workers, Flush).
func (s *Spool) broadcastLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}
