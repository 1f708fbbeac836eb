package operator_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/operator"
)

func TestOptionsValidateNamesTheBadRetentionValue(t *testing.T) {
	dir := t.TempDir()
	valid := func() operator.Options {
		return operator.Options{ProfilesDir: filepath.Join(dir, "profiles"), SpoolDir: filepath.Join(dir, "spool"), SecretsNamespace: "kprof-system"}
	}
	for _, tc := range []struct {
		name string
		mod  func(*operator.Options)
		want string
	}{
		{"a negative profiles max age", func(o *operator.Options) { o.ProfilesMaxAge = -time.Hour }, "profiles max age: must not be negative"},
		{"negative profiles max bytes", func(o *operator.Options) { o.ProfilesMaxBytes = -1 }, "profiles max bytes: must not be negative"},
		{"a negative prune interval", func(o *operator.Options) { o.ProfilesPruneInterval = -time.Second }, "profiles prune interval: must be positive"},
		{"a spool inside the profiles directory", func(o *operator.Options) { o.SpoolDir = filepath.Join(o.ProfilesDir, "spool") }, "must not be inside the profiles directory"},
		{"the spool as the profiles directory", func(o *operator.Options) { o.SpoolDir = o.ProfilesDir }, "must not be inside the profiles directory"},
	} {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			o := valid()
			tc.mod(&o)
			if err := o.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	t.Run("zero bounds are no bounds, and a sibling spool is fine", func(t *testing.T) {
		o := valid()
		o.SpoolDir = filepath.Join(dir, "profiles-spool") // a name prefix, not a parent
		if err := o.Validate(); err != nil {
			t.Fatal(err)
		}
		if o.ProfilesMaxAge != 0 || o.ProfilesMaxBytes != 0 || o.ProfilesPruneInterval != time.Minute {
			t.Fatalf("after Validate: max age %s, max bytes %d, interval %s; want 0, 0, 1m", o.ProfilesMaxAge, o.ProfilesMaxBytes, o.ProfilesPruneInterval)
		}
	})
}
