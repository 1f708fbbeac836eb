package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kprof/kprof/internal/storage"
)

// ErrTooLarge is wrapped by Get's error when an object is larger than its limit.
var ErrTooLarge = errors.New("object is larger than the limit")

// ErrNotFound is wrapped by Head's and Get's error when there is no such object.
var ErrNotFound = errors.New("no such object")

// Object is one entry of a listing.
type Object struct {
	Key          string
	Size         int64
	LastModified time.Time
}

// Walk lists every object whose key starts with prefix, one ListObjectsV2 page (up to
// 1000 keys) at a time, and calls fn with each page in key order. Timeout bounds each
// page request.
func (s *Store) Walk(ctx context.Context, prefix string, fn func([]Object) error) error {
	op := s.op("list", prefix)
	in := &awss3.ListObjectsV2Input{Bucket: aws.String(s.bucket)}
	if prefix != "" {
		in.Prefix = aws.String(prefix)
	}
	p := awss3.NewListObjectsV2Paginator(s.client, in)
	for p.HasMorePages() {
		pageCtx, cancel := context.WithTimeout(ctx, s.timeout)
		page, err := p.NextPage(pageCtx)
		cancel()
		if err != nil {
			return s.classify(ctx, op, err)
		}
		objs := make([]Object, 0, len(page.Contents))
		for _, o := range page.Contents {
			objs = append(objs, Object{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size), LastModified: aws.ToTime(o.LastModified)})
		}
		if err := fn(objs); err != nil {
			return err
		}
	}
	return nil
}

// Head returns the metadata stored with the object under key (see userMetadata) and
// its size. Timeout bounds the request.
func (s *Store) Head(ctx context.Context, key string) (storage.Meta, int64, error) {
	op := s.op("head", key)
	opCtx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	out, err := s.client.HeadObject(opCtx, &awss3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		if httpStatus(err) == http.StatusNotFound {
			return storage.Meta{}, 0, fmt.Errorf("%s: %w", op, ErrNotFound)
		}
		return storage.Meta{}, 0, s.classify(ctx, op, err)
	}
	meta, err := metaFromUserMetadata(out.Metadata)
	if err != nil {
		return storage.Meta{}, 0, fmt.Errorf("%s: %w", op, err)
	}
	return meta, aws.ToInt64(out.ContentLength), nil
}

// Get returns the object under key, at most limit bytes: a larger object is an error
// wrapping ErrTooLarge, read no further than limit+1 bytes. Timeout bounds the whole read.
func (s *Store) Get(ctx context.Context, key string, limit int64) ([]byte, error) {
	op := s.op("get", key)
	opCtx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	out, err := s.client.GetObject(opCtx, &awss3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		if httpStatus(err) == http.StatusNotFound {
			return nil, fmt.Errorf("%s: %w", op, ErrNotFound)
		}
		return nil, s.classify(ctx, op, err)
	}
	defer out.Body.Close()
	if n := aws.ToInt64(out.ContentLength); n > limit {
		return nil, fmt.Errorf("%s: %d bytes: %w (%d bytes)", op, n, ErrTooLarge, limit)
	}
	data, err := io.ReadAll(io.LimitReader(out.Body, limit+1))
	if err != nil {
		return nil, s.classify(ctx, op, fmt.Errorf("read body: %w", err))
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: more than %d bytes: %w", op, limit, ErrTooLarge)
	}
	return data, nil
}

// metaFromUserMetadata is the inverse of userMetadata: the fixed fields, and labels
// under their stored (mapped) keys. Values are percent-decoded.
func metaFromUserMetadata(raw map[string]string) (storage.Meta, error) {
	md := make(map[string]string, len(raw))
	for k, v := range raw {
		md[strings.ToLower(k)] = v
	}
	get := func(k string) string {
		v := md[k]
		if u, err := url.PathUnescape(v); err == nil {
			return u
		}
		return v
	}
	m := storage.Meta{
		Namespace: get(storage.MetaNamespace), Pod: get(storage.MetaPod), Node: get(storage.MetaNode),
		Service: get(storage.MetaService), Container: get(storage.MetaContainer), Target: get(storage.MetaTarget),
		Config: get(storage.MetaConfig), Reason: get(storage.MetaReason), Type: get(storage.MetaType),
	}
	if v := get(storage.MetaCapturedAt); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return m, fmt.Errorf("metadata %s %q: %w", storage.MetaCapturedAt, v, err)
		}
		m.CapturedAt = t
	}
	if v := get(storage.MetaDuration); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return m, fmt.Errorf("metadata %s %q: %w", storage.MetaDuration, v, err)
		}
		m.Duration = d
	}
	for k := range md {
		if name, ok := strings.CutPrefix(k, labelKeyPrefix); ok && name != "" {
			if m.Labels == nil {
				m.Labels = map[string]string{}
			}
			m.Labels[name] = get(k)
		}
	}
	return m, nil
}
