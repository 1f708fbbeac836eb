package storage

import (
	"context"
	"errors"
	"fmt"
)

// ErrorKind classifies why a store refused a profile, so status conditions and Events
// can name the problem. Stores wrap their errors in *Error.
type ErrorKind string

// Kinds of store errors.
const (
	KindNoSuchBucket        ErrorKind = "NoSuchBucket"        // the bucket does not exist
	KindAccessDenied        ErrorKind = "AccessDenied"        // credentials are valid but not allowed
	KindInvalidCredentials  ErrorKind = "InvalidCredentials"  // unknown access key, bad signature, expired token, none found
	KindEndpointUnreachable ErrorKind = "EndpointUnreachable" // DNS, connection refused, TLS, timeouts reaching the endpoint
	KindVerifyFailed        ErrorKind = "VerifyFailed"        // the stored object does not match what was sent
	KindStoreError          ErrorKind = "StoreError"          // anything else
)

// Error is a classified store error.
type Error struct {
	Kind ErrorKind
	Op   string // what was being done: "put s3://bucket/key"
	Err  error
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s: %v", e.Op, e.Kind, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the kind of a store error; KindStoreError when err is not classified,
// "" when err is nil or a context cancellation.
func KindOf(err error) ErrorKind {
	if err == nil || errors.Is(err, context.Canceled) {
		return ""
	}
	var se *Error
	if errors.As(err, &se) {
		return se.Kind
	}
	return KindStoreError
}

// Checker is implemented by stores that can test whether they are usable (the bucket
// exists, the credentials are accepted) without storing anything.
type Checker interface {
	Check(ctx context.Context) error
}
