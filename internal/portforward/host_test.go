package portforward

import (
	"strings"
	"testing"
)

func TestHostRoundTrips(t *testing.T) {
	tests := []struct {
		name           string
		namespace, pod string
		wantHost       string
	}{
		{"a plain pod", "default", "web-0", "web-0.default.pod.kprof.invalid"},
		{"a pod name with dots", "prod", "api.v2.canary-7f9c", "api.v2.canary-7f9c.prod.pod.kprof.invalid"},
		{"a one-letter namespace and pod", "a", "b", "b.a.pod.kprof.invalid"},
		{"a pod name of 253 characters", "ns", strings.Repeat(strings.Repeat("x", 62)+".", 4) + "y", strings.Repeat(strings.Repeat("x", 62)+".", 4) + "y.ns.pod.kprof.invalid"},
		{"a namespace of 63 characters", strings.Repeat("n", 63), "p", "p." + strings.Repeat("n", 63) + ".pod.kprof.invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host := Host(tt.namespace, tt.pod)
			if host != tt.wantHost {
				t.Fatalf("Host(%q, %q) = %q, want %q", tt.namespace, tt.pod, host, tt.wantHost)
			}
			ns, pod, err := ParseHost(host)
			if err != nil {
				t.Fatalf("ParseHost(%q): %v", host, err)
			}
			if ns != tt.namespace || pod != tt.pod {
				t.Fatalf("ParseHost(%q) = %q, %q, want %q, %q", host, ns, pod, tt.namespace, tt.pod)
			}
		})
	}
}

func TestParseHostIgnoresTheCaseOfTheSuffix(t *testing.T) {
	ns, pod, err := ParseHost("web-0.default.POD.Kprof.INVALID")
	if err != nil || ns != "default" || pod != "web-0" {
		t.Fatalf("ParseHost = %q, %q, %v; want default, web-0, nil", ns, pod, err)
	}
}

func TestParseHostRejects(t *testing.T) {
	tests := []struct {
		name    string
		host    string
		wantErr string
	}{
		{"an empty host", "", "is not a port-forward pod host"},
		{"a pod IP", "10.0.0.7", "is not a port-forward pod host"},
		{"an ordinary DNS name", "web.default.svc.cluster.local", "is not a port-forward pod host"},
		{"the bare suffix", ".pod.kprof.invalid", "is not a port-forward pod host"},
		{"a host without namespace", "web.pod.kprof.invalid", "has no namespace"},
		{"a host with a port", "web.default.pod.kprof.invalid:6060", "is not a port-forward pod host"},
		{"a host with a trailing dot", "web.default.pod.kprof.invalid.", "is not a port-forward pod host"},
		{"an empty pod name", ".default.pod.kprof.invalid", `pod name ""`},
		{"an empty namespace", "web..pod.kprof.invalid", `namespace ""`},
		{"an upper-case pod name", "Web.default.pod.kprof.invalid", `pod name "Web"`},
		{"an upper-case namespace", "web.Default.pod.kprof.invalid", `namespace "Default"`},
		{"a pod name with an empty label", "web..x.default.pod.kprof.invalid", `pod name "web..x"`},
		{"a pod name with an underscore", "web_0.default.pod.kprof.invalid", `pod name "web_0"`},
		{"a namespace of 64 characters", "p." + strings.Repeat("n", 64) + ".pod.kprof.invalid", "namespace"},
		{"a pod name of 254 characters", strings.Repeat("x", 254) + ".ns.pod.kprof.invalid", "pod name"},
		{"a suffix without its dot", "webdefault-pod.kprof.invalid", "is not a port-forward pod host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns, pod, err := ParseHost(tt.host)
			if err == nil {
				t.Fatalf("ParseHost(%q) = %q, %q, nil; want an error", tt.host, ns, pod)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ParseHost(%q) error %q does not contain %q", tt.host, err, tt.wantErr)
			}
		})
	}
}
