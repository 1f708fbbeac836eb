package nodethreshold

import (
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

func TestAMaxBackoffBelowTheInitialBackoffIsRejectedByName(t *testing.T) {
	c := Config{NodeName: "n", REST: &rest.Config{}, Pods: fakePods{}, InitialBackoff: time.Minute, MaxBackoff: time.Second}
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "MaxBackoff: must not be below InitialBackoff (1m0s), got 1s") {
		t.Fatalf("Validate = %v, want MaxBackoff named below InitialBackoff", err)
	}
	c.MaxBackoff = 0 // the default, 5m, is above
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate with the default MaxBackoff = %v, want nil", err)
	}
}
