package spool

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/logging/logtest"
	"github.com/kprof/kprof/internal/storage"
)

// waitTimeout bounds every wait in these tests; it is generous on purpose; a
// correct spool finishes in milliseconds.
const waitTimeout = 30 * time.Second

// fakeRemote is an in-memory storage.Store whose failures the test controls:
// the real S3 store cannot be made to fail on the n-th call, hang, or lose a
// response on demand.
type fakeRemote struct {
	name string

	mu      sync.Mutex
	objects map[string]fakeObject
	okPuts  map[string]int // Put calls that returned nil, per key
	stores  map[string]int // times an object was written, per key
	calls   int            // Put calls
	// fail decides the outcome of Put call number n (1-based); nil succeeds.
	fail func(n int, key string, data []byte) error
	// hang makes Put block until its ctx is done; storeFirst stores the object
	// before hanging (a response lost after the remote succeeded).
	hang, storeFirst bool
	// failDelay is how long a failing Put takes, to widen the window in which
	// concurrent attempts would overlap.
	failDelay    time.Duration
	started      chan string // receives the key of each hanging Put, when set
	inFlight     int
	maxInFlight  int             // most Puts at once since resetMax
	inFlightKeys map[string]bool // keys being put
	overlaps     []string        // keys put twice at once
}

type fakeObject struct {
	data []byte
	meta storage.Meta
}

var _ storage.Store = (*fakeRemote)(nil)

func newFakeRemote(name string) *fakeRemote {
	return &fakeRemote{
		name:         name,
		objects:      map[string]fakeObject{},
		okPuts:       map[string]int{},
		stores:       map[string]int{},
		inFlightKeys: map[string]bool{},
	}
}

func (f *fakeRemote) String() string { return "fake://" + f.name }

func (f *fakeRemote) Put(ctx context.Context, key string, data []byte, meta storage.Meta) error {
	f.mu.Lock()
	f.calls++
	n := f.calls
	f.inFlight++
	f.maxInFlight = max(f.maxInFlight, f.inFlight)
	if f.inFlightKeys[key] {
		f.overlaps = append(f.overlaps, key)
	}
	f.inFlightKeys[key] = true
	var err error
	if f.fail != nil {
		err = f.fail(n, key, data)
	}
	hang, storeFirst, started, failDelay := f.hang, f.storeFirst, f.started, f.failDelay
	if err == nil && (!hang || storeFirst) {
		f.objects[key] = fakeObject{data: bytes.Clone(data), meta: meta}
		f.stores[key]++
	}
	f.mu.Unlock()

	if err != nil && failDelay > 0 {
		select {
		case <-time.After(failDelay):
		case <-ctx.Done():
		}
	}
	if err == nil && hang {
		if started != nil {
			select {
			case started <- key:
			default:
			}
		}
		<-ctx.Done()
		err = &storage.Error{Kind: storage.KindEndpointUnreachable, Op: "put " + key, Err: ctx.Err()}
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	f.inFlight--
	delete(f.inFlightKeys, key)
	if err == nil {
		f.okPuts[key]++
	}
	return err
}

func (f *fakeRemote) setFail(fail func(n int, key string, data []byte) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = fail
}

func (f *fakeRemote) setHang(hang, storeFirst bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hang, f.storeFirst = hang, storeFirst
}

func (f *fakeRemote) resetMax() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.maxInFlight = f.inFlight
}

func (f *fakeRemote) snapshot() (calls, maxInFlight int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, f.maxInFlight
}

// checkDelivered fails t unless the remote holds exactly want (key -> data),
// each confirmed by exactly one successful Put, and no key was put twice at once.
func (f *fakeRemote) checkDelivered(t *testing.T, want map[string][]byte) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.objects) != len(want) {
		t.Errorf("remote holds %d objects, want %d", len(f.objects), len(want))
	}
	for key, data := range want {
		obj, ok := f.objects[key]
		switch {
		case !ok:
			t.Errorf("remote is missing %s", key)
		case !bytes.Equal(obj.data, data):
			t.Errorf("remote object %s has %d bytes that differ from the %d put", key, len(obj.data), len(data))
		}
		if n := f.okPuts[key]; n != 1 {
			t.Errorf("remote confirmed %s %d times, want exactly once", key, n)
		}
	}
	if len(f.overlaps) > 0 {
		t.Errorf("keys uploaded twice at once: %v", f.overlaps)
	}
}

func outage(kind storage.ErrorKind) error {
	return &storage.Error{Kind: kind, Op: "put", Err: errors.New("injected")}
}

// failFirst fails the first n Put calls with kind.
func failFirst(n int, kind storage.ErrorKind) func(int, string, []byte) error {
	return func(call int, _ string, _ []byte) error {
		if call <= n {
			return outage(kind)
		}
		return nil
	}
}

// checkingRemote is a fakeRemote that implements storage.Checker.
type checkingRemote struct {
	*fakeRemote
	gate    chan struct{} // when set, Check waits until it is closed
	checkMu sync.Mutex
	check   error
	checks  int
}

func (c *checkingRemote) Check(ctx context.Context) error {
	if c.gate != nil {
		select {
		case <-c.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c.checkMu.Lock()
	defer c.checkMu.Unlock()
	c.checks++
	return c.check
}

func (c *checkingRemote) setCheck(err error) {
	c.checkMu.Lock()
	defer c.checkMu.Unlock()
	c.check = err
}

func (c *checkingRemote) checkCount() int {
	c.checkMu.Lock()
	defer c.checkMu.Unlock()
	return c.checks
}

// recorder collects the spool's callbacks.
type recorder struct {
	mu       sync.Mutex
	uploaded map[string]int
	evicted  []eviction
	health   []error
	healthCh chan error
	evictCh  chan eviction
}

type eviction struct {
	key, reason string
	meta        storage.Meta
}

func newRecorder() *recorder {
	return &recorder{uploaded: map[string]int{}, healthCh: make(chan error, 1000), evictCh: make(chan eviction, 1000)}
}

func (r *recorder) hook(cfg *Config) {
	cfg.OnUploaded = func(key string, _ storage.Meta) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.uploaded[key]++
	}
	cfg.OnEvicted = func(key string, meta storage.Meta, reason string) {
		r.mu.Lock()
		defer r.mu.Unlock()
		ev := eviction{key: key, reason: reason, meta: meta}
		r.evicted = append(r.evicted, ev)
		r.evictCh <- ev
	}
	cfg.OnHealth = func(err error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.health = append(r.health, err)
		r.healthCh <- err
	}
}

func (r *recorder) evictions() []eviction {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.evicted)
}

func (r *recorder) healthChanges() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.health)
}

// checkUploaded fails t unless OnUploaded was called exactly once for each key
// and for no other.
func (r *recorder) checkUploaded(t *testing.T, keys []string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.uploaded) != len(keys) {
		t.Errorf("OnUploaded saw %d keys, want %d", len(r.uploaded), len(keys))
	}
	for _, k := range keys {
		if n := r.uploaded[k]; n != 1 {
			t.Errorf("OnUploaded called %d times for %s, want once", n, k)
		}
	}
}

// waitHealth waits for the next OnHealth call.
func (r *recorder) waitHealth(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.healthCh:
		return err
	case <-time.After(waitTimeout):
		t.Fatalf("no OnHealth call within %s", waitTimeout)
		return nil
	}
}

// waitEviction waits for the next OnEvicted call.
func (r *recorder) waitEviction(t *testing.T) eviction {
	t.Helper()
	select {
	case ev := <-r.evictCh:
		return ev
	case <-time.After(waitTimeout):
		t.Fatalf("no OnEvicted call within %s", waitTimeout)
		return eviction{}
	}
}

// fakeClock is an injectable clock for age eviction.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// newSpool creates a spool on cfg (Dir defaults to a fresh directory, backoffs
// to a few milliseconds) that is shut down when the test ends.
func newSpool(t *testing.T, cfg Config) *Spool {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(t.TempDir(), "spool")
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 5 * time.Millisecond
	}
	cfg.Logger = logtest.NewAt(t, slog.LevelDebug)
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return s
}

func start(t *testing.T, s *Spool) {
	t.Helper()
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
}

func flush(t *testing.T, s *Spool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

func put(t *testing.T, s *Spool, key string, data []byte) {
	t.Helper()
	if err := s.Put(context.Background(), key, data, testMeta(key)); err != nil {
		t.Fatalf("Put %s: %v", key, err)
	}
}

func testMeta(key string) storage.Meta {
	return storage.Meta{
		Namespace:  "shop",
		Pod:        "checkout-" + key,
		Service:    "checkout",
		Reason:     "schedule",
		Type:       "cpu",
		CapturedAt: time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC),
		Duration:   10 * time.Second,
		Labels:     map[string]string{"team": "payments"},
	}
}

// profile returns size bytes that differ per seed.
func profile(seed, size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(seed*31 + i*7)
	}
	return b
}

// waitFor polls cond until it holds or waitTimeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", waitTimeout, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// spoolFiles lists the names of the files in dir.
func spoolFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read spool directory: %v", err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// entryIDs maps each key in dir to the id of its entry, from the sidecars.
func entryIDs(t *testing.T, dir string) map[string]string {
	t.Helper()
	ids := map[string]string{}
	for _, name := range spoolFiles(t, dir) {
		id, ok := strings.CutSuffix(name, sidecarSuffix)
		if !ok {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("read sidecar: %v", err)
		}
		var sc sidecar
		if err := json.Unmarshal(b, &sc); err != nil {
			t.Fatalf("decode sidecar %s: %v", name, err)
		}
		ids[sc.Key] = id
	}
	return ids
}

func metaJSON(t *testing.T, m storage.Meta) string {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("encode meta: %v", err)
	}
	return string(b)
}

func keys(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s/%03d.pb.gz", prefix, i)
	}
	return out
}
