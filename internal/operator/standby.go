package operator

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/controller"
	"github.com/kprof/kprof/internal/lifecycle"
)

// spoolDrain delivers what an earlier run of this replica left in its spool
// directory, whether or not this replica is the leader: a leader killed with
// profiles spooled (kill -9, OOM) comes back as a standby when another replica
// took over, and its spool (an emptyDir survives container restarts; a PVC
// survives the pod) must not wait until it leads again, nor age out meanwhile.
//
// At start, when the spool directory holds any file, it lists the ProfilingConfigs
// and resolves the store of each S3 one (Stores starts a spool for each, which
// replays its directory). Uploads it confirms while this replica is not the leader
// are counted in the config's status.totalUploads here (read, add, update: a
// conflict with the leader's writes is retried); once elected, the reconciler
// counts them as before. Captures stay with the leader.
type spoolDrain struct {
	dir     string
	stores  *controller.Stores
	reader  client.Reader // the API server, not the cache (a standby has none started)
	writer  client.StatusClient
	elected <-chan struct{}
	log     *slog.Logger

	mu      sync.Mutex
	pending map[string]int64 // group -> uploads not yet in status
	kick    chan struct{}
}

func newSpoolDrain(dir string, stores *controller.Stores, reader client.Reader, writer client.StatusClient, elected <-chan struct{}, log *slog.Logger) *spoolDrain {
	return &spoolDrain{dir: dir, stores: stores, reader: reader, writer: writer, elected: elected, log: log,
		pending: map[string]int64{}, kick: make(chan struct{}, 1)}
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: every replica drains its own spool.
func (d *spoolDrain) NeedLeaderElection() bool { return false }

// leader reports whether this replica leads (or runs without leader election).
func (d *spoolDrain) leader() bool {
	select {
	case <-d.elected:
		return true
	default:
		return false
	}
}

// Start implements manager.Runnable. It runs until ctx ends: the counts of uploads
// confirmed before the election are written from here, also after it.
func (d *spoolDrain) Start(ctx context.Context) error {
	if spooled, err := hasFiles(d.dir); err != nil {
		d.log.Error("cannot look into the spool directory; what it holds is uploaded once this replica leads", "err", err, "dir", d.dir)
	} else if spooled {
		go d.resolve(ctx)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-d.kick:
		case <-tick.C:
		}
		d.flush(ctx)
	}
}

// resolve starts the spool of every S3 config's store, retrying while the API server
// cannot list them, until this replica is elected (its reconciler resolves them then).
func (d *spoolDrain) resolve(ctx context.Context) {
	backoff := lifecycle.Backoff{Base: time.Second, Max: 30 * time.Second}
	for failures := 1; ; failures++ {
		if d.leader() {
			return
		}
		err := d.resolveAll(ctx)
		if err == nil {
			return
		}
		wait := backoff.Delay(failures)
		d.log.Info("cannot resolve the stores of the spooled profiles yet; retrying", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return
		case <-d.elected:
			return
		case <-time.After(wait):
		}
	}
}

func (d *spoolDrain) resolveAll(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var list profilingv1alpha1.ProfilingConfigList
	if err := d.reader.List(lctx, &list); err != nil {
		return fmt.Errorf("list ProfilingConfigs: %w", err)
	}
	var errs []error
	for i := range list.Items {
		pc := &list.Items[i]
		if pc.Spec.S3Config == nil || !pc.DeletionTimestamp.IsZero() {
			continue
		}
		if _, err := d.stores.Resolve(lctx, pc); err != nil {
			var cerr *controller.ErrConfig
			if errors.As(err, &cerr) {
				continue // the leader reports it in the config's status
			}
			errs = append(errs, fmt.Errorf("store of %s/%s: %w", pc.Namespace, pc.Name, err))
		}
	}
	if len(errs) == 0 {
		d.log.Info("standby replica drains its spool", "dir", d.dir)
	}
	return errors.Join(errs...)
}

// uploaded counts an upload confirmed while this replica is not the leader.
func (d *spoolDrain) uploaded(group string) {
	d.mu.Lock()
	d.pending[group]++
	d.mu.Unlock()
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// flush adds the pending counts to the configs' status.
func (d *spoolDrain) flush(ctx context.Context) {
	d.mu.Lock()
	todo := d.pending
	d.pending = map[string]int64{}
	d.mu.Unlock()
	for group, n := range todo {
		if err := d.addUploads(ctx, group, n); err != nil {
			if apierrors.IsNotFound(err) {
				continue // the config is gone, and its counters with it
			}
			d.log.Info("cannot count uploads in status yet; retrying", "config", group, "uploads", n, "err", err)
			d.mu.Lock()
			d.pending[group] += n
			d.mu.Unlock()
		}
	}
}

func (d *spoolDrain) addUploads(ctx context.Context, group string, n int64) error {
	ns, name := splitGroup(group)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		var pc profilingv1alpha1.ProfilingConfig
		if err := d.reader.Get(cctx, client.ObjectKey{Namespace: ns, Name: name}, &pc); err != nil {
			return err
		}
		pc.Status.TotalUploads += n
		return d.writer.Status().Update(cctx, &pc)
	})
}

func splitGroup(group string) (string, string) {
	ns, name, ok := strings.Cut(group, "/")
	if !ok {
		return "", group
	}
	return ns, name
}

// hasFiles reports whether any regular file lies below dir (a missing dir has none).
func hasFiles(dir string) (bool, error) {
	found := false
	err := filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if e.Type().IsRegular() {
			found = true
			return filepath.SkipAll
		}
		return nil
	})
	return found, err
}
