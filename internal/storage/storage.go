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

// Locator is a Store that can say where a key ends up, as a URL a user can follow:
// s3://bucket/key, file:///path/key. A store in front of another (a spool) answers
// with the location of the store behind it.
type Locator interface {
	Location(key string) string
}

// Location returns where s stores key: its Locator answer, else "<store>/<key>".
func Location(s Store, key string) string {
	if l, ok := s.(Locator); ok {
		if loc := l.Location(key); loc != "" {
			return loc
		}
	}
	return s.String() + "/" + key
}
