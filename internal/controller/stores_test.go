package controller

import (
	"strings"
	"testing"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
)

func TestDirBelowRefusesToLeaveTheProfilesDirectory(t *testing.T) {
	root := t.TempDir()
	for _, sub := range []string{"/etc", "../x", "a/../../b"} {
		if _, err := dirBelow(root, sub); err == nil {
			t.Errorf("dirBelow(%q) accepted", sub)
		}
	}
	if d, err := dirBelow(root, "team/a"); err != nil || !strings.HasPrefix(d, root) {
		t.Errorf("dirBelow(team/a) = %q, %v", d, err)
	}
}

func TestRemoteIDSeparatesDestinationsButNotPrefixes(t *testing.T) {
	base := profilingv1alpha1.S3Config{Bucket: "profiles", Endpoint: "http://minio:9000", Prefix: "a"}
	samePlace := base
	samePlace.Prefix = "b"
	otherBucket := base
	otherBucket.Bucket = "other"
	otherSecret := base
	otherSecret.CredentialsSecretRef = &profilingv1alpha1.SecretReference{Name: "team-b"}
	if remoteID(&base) != remoteID(&samePlace) {
		t.Error("a different prefix got its own spool")
	}
	if remoteID(&base) == remoteID(&otherBucket) || remoteID(&base) == remoteID(&otherSecret) {
		t.Error("different destinations share a spool")
	}
}
