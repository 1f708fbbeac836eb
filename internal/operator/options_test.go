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
		{"a bad agent selector", func(o *operator.Options) { o.AgentSelector = "a=(" }, `agent selector "a=("`},
		{"an agent recorder port out of range", func(o *operator.Options) { o.AgentRecorderPort = 70000 }, "agent recorder port: must be 1-65535"},
		{"a negative recorder window", func(o *operator.Options) { o.RecorderWindow = -time.Second }, "recorder window: must not be negative"},
		{"a negative ProfileCapture bound", func(o *operator.Options) { o.MaxCapturesPerNamespace = -1 }, "profilecapture max per namespace: must be positive"},
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
		o.SetDefaults()
		if err := o.Validate(); err != nil {
			t.Fatal(err)
		}
		if o.ProfilesMaxAge != 0 || o.ProfilesMaxBytes != 0 || o.ProfilesPruneInterval != time.Minute {
			t.Fatalf("after SetDefaults: max age %s, max bytes %d, interval %s; want 0, 0, 1m", o.ProfilesMaxAge, o.ProfilesMaxBytes, o.ProfilesPruneInterval)
		}
	})
}

func TestOptionsValidateNamesTheBadUIField(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		ui   operator.UIOptions
		want string
	}{
		{"a store with the UI off", operator.UIOptions{Store: "s3://profiles"}, "UI.Store: needs UI.Listen (the web UI is off)"},
		{"an address without a port", operator.UIOptions{Listen: "localhost"}, `UI.Listen "localhost": want HOST:PORT`},
		{"a negative size limit", operator.UIOptions{Listen: ":8082", MaxProfileBytes: -1}, "UI.MaxProfileBytes: must be positive"},
		{"an S3 store without a bucket", operator.UIOptions{Listen: ":8082", Store: "s3:///prod"}, `UI.Store "s3:///prod": no bucket`},
		{"an S3 region for a directory", operator.UIOptions{Listen: ":8082", S3Region: "eu-west-1"}, "UI.S3Region: needs an s3:// UI.Store"},
	} {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			o := operator.Options{ProfilesDir: filepath.Join(dir, "profiles"), SecretsNamespace: "kprof-system", UI: tc.ui}
			if err := o.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	t.Run("an enabled UI gets the default size limit", func(t *testing.T) {
		o := operator.Options{ProfilesDir: filepath.Join(dir, "profiles"), SecretsNamespace: "kprof-system", UI: operator.UIOptions{Listen: ":8082"}}
		o.SetDefaults()
		if err := o.Validate(); err != nil {
			t.Fatal(err)
		}
		if o.UI.MaxProfileBytes != 64<<20 {
			t.Errorf("UI.MaxProfileBytes = %d, want 64 MiB", o.UI.MaxProfileBytes)
		}
	})
}
