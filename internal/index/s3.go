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
//
// It keeps one Entry per profile and nothing per marker: S3 lists keys in order and
// a marker's key starts with its profile's key, so a marker comes after its profile
// and fills in that profile's entry. (A marker listed before its profile, by a store
// that does not list in order, waits in a map for it.)
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

// list reads the entries of the profiles below prefix whose key keep accepts, in
// the order listed, unfiltered.
func (x *s3Index) list(ctx context.Context, prefix string, keep func(key string) bool) ([]Entry, error) {
	lp := x.listPrefix()
	loc := "s3://" + x.bucket + "/"
	var entries []Entry
	entryOf := map[string]int{}        // profile key → its entry; a later marker overrides an earlier one
	early := map[string]storage.Meta{} // markers seen before their profile
	var names interner
	err := x.store.Walk(ctx, prefix, func(page []s3.Object) error {
		for _, o := range page {
			switch {
			case storage.IsMarkerKey(o.Key):
				k, m, err := storage.ParseMarkerKey(o.Key)
				if err != nil || !keep(k) {
					continue
				}
				names.meta(&m)
				if i, ok := entryOf[k]; ok {
					entries[i].Source = "marker"
					fromMeta(&entries[i], m)
				} else {
					early[k] = m
				}
			case strings.HasSuffix(o.Key, "/"): // a "directory" placeholder
			case !keep(o.Key):
			default:
				// Location, ID and the key share one string.
				location := loc + o.Key
				key := location[len(loc):]
				e := Entry{ID: strings.TrimPrefix(key, lp), Size: o.Size, Location: location}
				if m, ok := early[key]; ok {
					e.Source = "marker"
					fromMeta(&e, m)
					delete(early, key)
				}
				entryOf[key] = len(entries)
				entries = append(entries, e)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list profiles in %s: %w", x, err)
	}
	entryOf, early = nil, nil

	var needHead []int // profiles without a marker
	for i := range entries {
		if entries[i].Source != "" {
			continue
		}
		entries[i].Source = "key"
		if m, ok := parseDefaultKey(entries[i].Location[len(loc):]); ok {
			fromMeta(&entries[i], m)
		}
		needHead = append(needHead, i)
	}
	if err := x.headAll(ctx, entries, needHead); err != nil {
		return nil, err
	}
	return entries, nil
}

// interner keeps one copy of each name: 100 000 markers name a few namespaces,
// services, pods, types and reasons, each decoded into a new string.
type interner map[string]string

func (in *interner) meta(m *storage.Meta) {
	for _, s := range []*string{&m.Namespace, &m.Pod, &m.Node, &m.Service, &m.Container, &m.Target, &m.Config, &m.Reason, &m.Type} {
		*s = in.name(*s)
	}
}

func (in *interner) name(s string) string {
	if s == "" {
		return s
	}
	if *in == nil {
		*in = map[string]string{}
	}
	if v, ok := (*in)[s]; ok {
		return v
	}
	(*in)[s] = s
	return s
}

// headAll reads the metadata of entries[i] for i in idx with HEAD requests, the first
// maxHeads of them; the others get an Error saying their metadata was not read.
func (x *s3Index) headAll(ctx context.Context, entries []Entry, idx []int) error {
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
				m, _, err := x.store.Head(ctx, strings.TrimPrefix(entries[i].Location, "s3://"+x.bucket+"/"))
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
