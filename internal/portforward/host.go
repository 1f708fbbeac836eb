// Package portforward lets the capture engine fetch pprof from pods through the
// API server's pods/portforward subresource, for an operator (or `kprof capture`)
// running outside the cluster, where pod IPs are not routable.
//
// A pod is named in a target URL by a synthetic host, Host(namespace, name), and the
// HTTP port of the URL: http://<name>.<namespace>.pod.kprof.invalid:6060/debug/pprof.
// NewTransport returns an http.Transport whose dialer resolves such hosts to a stream
// of a port-forward connection to that pod; one connection per pod carries all
// concurrent requests to it and is closed when idle.
package portforward

import (
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// hostSuffix ends every pod host. ".invalid" is reserved (RFC 6761): such a name
// never resolves through DNS, so a URL meant for port-forward cannot silently reach
// some other machine when used with an ordinary client.
const hostSuffix = ".pod.kprof.invalid"

// Host encodes a pod as a synthetic URL host that the transport resolves:
// "<name>.<namespace>.pod.kprof.invalid". Pod names may contain dots, namespaces
// cannot, so ParseHost reads the namespace from the right. Host does not validate
// its arguments: ParseHost (and so the transport) rejects a host made of names that
// Kubernetes would not accept.
func Host(namespace, name string) string {
	return name + "." + namespace + hostSuffix
}

// ParseHost is the inverse of Host. host has no port. The suffix is matched without
// regard to case, as DNS names are; the namespace must be a DNS-1123 label and the
// name a DNS-1123 subdomain, so an upper-case pod name is an error, not a different pod.
func ParseHost(host string) (namespace, name string, err error) {
	if len(host) <= len(hostSuffix) || !strings.EqualFold(host[len(host)-len(hostSuffix):], hostSuffix) {
		return "", "", fmt.Errorf("host %q is not a port-forward pod host <name>.<namespace>%s", host, hostSuffix)
	}
	rest := host[:len(host)-len(hostSuffix)]
	dot := strings.LastIndexByte(rest, '.')
	if dot < 0 {
		return "", "", fmt.Errorf("host %q has no namespace: want <name>.<namespace>%s", host, hostSuffix)
	}
	namespace, name = rest[dot+1:], rest[:dot]
	var errs []error
	if msgs := validation.IsDNS1123Label(namespace); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("namespace %q: %s", namespace, strings.Join(msgs, "; ")))
	}
	if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("pod name %q: %s", name, strings.Join(msgs, "; ")))
	}
	if err := errors.Join(errs...); err != nil {
		return "", "", fmt.Errorf("host %q: %w", host, err)
	}
	return namespace, name, nil
}
