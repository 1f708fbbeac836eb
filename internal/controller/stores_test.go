package controller

import (
	"strings"
	"testing"
)

func TestLocalStoresRefuseToLeaveTheProfilesDirectory(t *testing.T) {
	l := &LocalStores{Dir: t.TempDir()}
	for _, sub := range []string{"/etc", "../x", "a/../../b"} {
		if _, err := l.dirFor(sub); err == nil {
			t.Errorf("dirFor(%q) accepted", sub)
		}
	}
	if d, err := l.dirFor("team/a"); err != nil || !strings.HasPrefix(d, l.Dir) {
		t.Errorf("dirFor(team/a) = %q, %v", d, err)
	}
}
