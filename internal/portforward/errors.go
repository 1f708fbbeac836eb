package portforward

import (
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/httpstream"
	streamhttp "k8s.io/streaming/pkg/httpstream"
)

// explainUpgradeError says what is missing when the API server refused a port-forward
// to namespace/name. The result unwraps to err and to the API server's Status, so
// that apierrors.IsForbidden and friends work on it.
func explainUpgradeError(err error, namespace, name string) error {
	status := findStatus(err)
	var explained error
	switch {
	case status == nil:
		return err
	case apierrors.IsForbidden(status):
		explained = fmt.Errorf("missing permission: RBAC must grant this identity verb \"create\" on resource \"pods/portforward\" in namespace %q: %w", namespace, err)
	case apierrors.IsNotFound(status):
		explained = fmt.Errorf("pod %s/%s not found: %w", namespace, name, err)
	case apierrors.IsUnauthorized(status):
		explained = fmt.Errorf("the API server rejected the credentials: %w", err)
	default:
		explained = err
	}
	return &statusError{err: explained, status: status}
}

// statusError is an error whose API Status is hidden under an upgrade failure.
type statusError struct {
	err    error
	status *apierrors.StatusError
}

func (e *statusError) Error() string   { return e.err.Error() }
func (e *statusError) Unwrap() []error { return []error{e.err, e.status} }

// findStatus returns the first API Status error in err's tree, looking also into the
// causes of upgrade failures, which do not implement Unwrap.
func findStatus(err error) *apierrors.StatusError {
	var found *apierrors.StatusError
	var walk func(error)
	walk = func(e error) {
		if e == nil || found != nil {
			return
		}
		var s *apierrors.StatusError
		if errors.As(e, &s) {
			found = s
			return
		}
		var a *httpstream.UpgradeFailureError
		if errors.As(e, &a) {
			walk(a.Cause)
		}
		var b *streamhttp.UpgradeFailureError
		if errors.As(e, &b) {
			walk(b.Cause)
		}
		if m, ok := e.(interface{ Unwrap() []error }); ok {
			for _, inner := range m.Unwrap() {
				walk(inner)
			}
		}
	}
	walk(err)
	return found
}
