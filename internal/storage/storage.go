// Package storage defines where captured profiles go. A Store receives the bytes a
// target served (never re-encoded) together with metadata describing who and why.
package storage

import "context"

// Store persists profiles. Put must either store the whole profile under key or
// leave nothing behind that looks like a profile (no half-written objects).
type Store interface {
	// Put stores data under key with meta. data is what the target served.
	Put(ctx context.Context, key string, data []byte, meta Meta) error
	// String names the store for logs and status ("fs:/var/lib/kprof", "s3://bucket/prefix").
	String() string
}
