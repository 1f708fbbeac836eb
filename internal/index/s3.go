package index

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/kprof/kprof/internal/storage"
	"github.com/kprof/kprof/internal/storage/s3"
)

// headConcurrency is how many HEAD requests for objects without a marker are in flight.
const headConcurrency = 8

// s3Index lists a bucket prefix written by the S3 store.
type s3Index struct {
	bucket, prefix string
	maxHeads       int
	store          *s3.Store
}

func newS3(ctx context.Context, cfg Config) (*s3Index, error) {
	bucket, prefix := splitS3URL(cfg.Store)
	st, err := s3.New(ctx, s3.Config{Bucket: bucket, Endpoint: cfg.S3Endpoint, Region: cfg.S3Region,
		Timeout: cfg.Timeout, HTTPClient: cfg.HTTPClient})
	if err != nil {
		return nil, fmt.Errorf("profile index: %w", err)
	}
	return &s3Index{bucket: bucket, prefix: prefix, maxHeads: cfg.MaxHeads, store: st}, nil
}

func (x *s3Index) String() string {
	if x.prefix == "" {
		return "s3://" + x.bucket
	}
	return "s3://" + x.bucket + "/" + x.prefix
}

// listPrefix is what keys below the prefix start with.
func (x *s3Index) listPrefix() string {
	if x.prefix == "" {
		return ""
	}
	return x.prefix + "/"
}

// List pages through the prefix. A profile's metadata comes from its index marker;
// for a profile without one (written before markers existed) from its key (default
// layout) and a HEAD request, at most maxHeads of them.
func (x *s3Index) List(ctx context.Context, f Filter) ([]Entry, error) {
	entries, err := x.list(ctx, x.listPrefix(), func(string) bool { return true })
	if err != nil {
		return nil, err
	}
	out := entries[:0]
	for _, e := range entries {
		if f.Match(e) {
			out = append(out, withIDCheck(e))
		}
	}
	sortEntries(out)
	return out, nil
}

// Stat lists the profile id alone: one ListObjectsV2 request with the key as the
// prefix (the key and its index marker), and a HEAD request without a marker.
func (x *s3Index) Stat(ctx context.Context, id string) (Entry, error) {
	if err := CheckID(id); err != nil {
		return Entry{}, err
	}
	key := x.listPrefix() + id
	es, err := x.list(ctx, key, func(k string) bool { return k == key })
	if err != nil {
		return Entry{}, err
	}
	if len(es) == 0 {
		return Entry{}, fmt.Errorf("profile s3://%s/%s: %w", x.bucket, key, ErrNotFound)
	}
	return withIDCheck(es[0]), nil
}

// list reads the entries of the objects below prefix whose key keep accepts, unsorted.
func (x *s3Index) list(ctx context.Context, prefix string, keep func(key string) bool) ([]Entry, error) {
	lp := x.listPrefix()
	var objs []s3.Object
	markers := map[string]storage.Meta{}
	err := x.store.Walk(ctx, prefix, func(page []s3.Object) error {
		for _, o := range page {
			switch {
			case storage.IsMarkerKey(o.Key):
				if k, m, err := storage.ParseMarkerKey(o.Key); err == nil && keep(k) {
					markers[k] = m
				}
			case strings.HasSuffix(o.Key, "/"): // a "directory" placeholder
			case keep(o.Key):
				objs = append(objs, o)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list profiles in %s: %w", x, err)
	}

	entries := make([]Entry, len(objs))
	var needHead []int
	for i, o := range objs {
		e := Entry{ID: strings.TrimPrefix(o.Key, lp), Size: o.Size, Location: "s3://" + x.bucket + "/" + o.Key}
		if m, ok := markers[o.Key]; ok {
			e.Source = "marker"
			fromMeta(&e, m)
		} else {
			e.Source = "key"
			if m, ok := parseDefaultKey(o.Key); ok {
				fromMeta(&e, m)
			}
			needHead = append(needHead, i)
		}
		entries[i] = e
	}
	if err := x.headAll(ctx, objs, entries, needHead); err != nil {
		return nil, err
	}
	return entries, nil
}

// headAll reads the metadata of entries[i] for i in idx with HEAD requests, the first
// maxHeads of them; the others get an Error saying their metadata was not read.
func (x *s3Index) headAll(ctx context.Context, objs []s3.Object, entries []Entry, idx []int) error {
	if len(idx) > x.maxHeads {
		for _, i := range idx[x.maxHeads:] {
			entries[i].Error = fmt.Sprintf("metadata not read: more than %d objects without an index marker (HEAD requests are bounded)", x.maxHeads)
		}
		idx = idx[:x.maxHeads]
	}
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(headConcurrency, len(idx)) {
		wg.Go(func() {
			for i := range work {
				m, _, err := x.store.Head(ctx, objs[i].Key)
				if err != nil {
					entries[i].Error = err.Error()
					continue
				}
				if m.Type == "" { // not written by kprof: keep what the key says
					entries[i].Error = "no kprof metadata on the object"
					continue
				}
				entries[i].Source = "head"
				fromMeta(&entries[i], m)
			}
		})
	}
	for _, i := range idx {
		if ctx.Err() != nil {
			break
		}
		work <- i
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list profiles in %s: %w", x, err)
	}
	return nil
}

// Open downloads the profile id, at most limit bytes.
func (x *s3Index) Open(ctx context.Context, id string, limit int64) ([]byte, error) {
	if err := CheckID(id); err != nil {
		return nil, err
	}
	key := x.listPrefix() + id
	what := "profile s3://" + x.bucket + "/" + key
	limit = limitOrDefault(limit)
	data, err := x.store.Get(ctx, key, limit)
	switch {
	case errors.Is(err, s3.ErrNotFound):
		return nil, fmt.Errorf("open %s: %w", what, ErrNotFound)
	case errors.Is(err, s3.ErrTooLarge):
		return nil, fmt.Errorf("%w: %w", ErrTooLarge, err)
	case err != nil:
		return nil, fmt.Errorf("open %s: %w", what, err)
	}
	return data, checkProfile(what, data, limit)
}
