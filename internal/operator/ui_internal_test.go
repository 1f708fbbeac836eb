package operator

import (
	"context"
	"strings"
	"testing"

	"github.com/kprof/kprof/internal/index"
)

// storeName is an index that only has a name.
type storeName string

func (s storeName) List(context.Context, index.Filter) ([]index.Entry, error) { return nil, nil }
func (s storeName) Open(context.Context, string, int64) ([]byte, error) {
	return nil, index.ErrNotFound
}
func (s storeName) Stat(context.Context, string) (index.Entry, error) {
	return index.Entry{}, index.ErrNotFound
}
func (s storeName) String() string { return string(s) }

func TestReplicaIndexSaysWhichPodItShowsAndWhetherItCaptures(t *testing.T) {
	elected := make(chan struct{})
	x := replicaIndex{Index: storeName("/var/lib/kprof/profiles"), pod: "kprof-operator-7d9f-b", elected: elected}
	standby := x.String()
	if !strings.HasPrefix(standby, "/var/lib/kprof/profiles in pod kprof-operator-7d9f-b (a standby replica: the leader captures") ||
		!strings.Contains(standby, "port-forward to the leader's pod") {
		t.Errorf("before the election: %q, want the directory, the pod, and that the leader's pod holds the profiles", standby)
	}
	close(elected)
	if got, want := x.String(), "/var/lib/kprof/profiles in pod kprof-operator-7d9f-b (the replica that captures)"; got != want {
		t.Errorf("once elected: %q, want %q", got, want)
	}
}
