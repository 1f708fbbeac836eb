package profdiff

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/google/pprof/profile"

	"github.com/kprof/kprof/internal/index"
)

// readLimited reads at most limit bytes of path, failing when it holds more.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		size := int64(0)
		if st, err := f.Stat(); err == nil {
			size = st.Size()
		}
		return nil, &LimitError{Limit: "MaxFileBytes", What: "file size", Value: size, Max: limit}
	}
	return b, nil
}

// ReadProfile reads and parses one profile: the file may hold at most maxBytes, and
// its decompressed protobuf at most maxBytes*decompressFactor (a gzip bomb is refused
// before it is inflated). Every error names the file.
func ReadProfile(path string, maxBytes int64) (*profile.Profile, error) {
	p, _, err := readProfile(context.Background(), Input{Path: path}, maxBytes)
	return p, err
}

// readProfile reads and parses the profile of in (a file, or an index entry through
// Index.Open) under maxBytes, as ReadProfile does, and returns its stored size.
func readProfile(ctx context.Context, in Input, maxBytes int64) (*profile.Profile, int64, error) {
	path := in.Path
	var (
		b   []byte
		err error
	)
	if in.store != nil {
		b, err = in.store.Open(ctx, in.Entry.ID, maxBytes)
		if errors.Is(err, index.ErrTooLarge) {
			if in.Entry.Size > 0 && in.Entry.Size <= maxBytes { // stored within the limit, inflated past it
				err = &LimitError{Limit: "MaxFileBytes", What: fmt.Sprintf("decompressed size (%d× MaxFileBytes)", decompressFactor), Max: maxBytes * decompressFactor}
			} else {
				err = &LimitError{Limit: "MaxFileBytes", What: "profile size", Value: in.Entry.Size, Max: maxBytes}
			}
		}
	} else {
		b, err = readLimited(path, maxBytes)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read profile %s: %w", path, err)
	}
	size := int64(len(b))
	if size == 0 {
		return nil, 0, fmt.Errorf("read profile %s: the file is empty", path)
	}
	if len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, 0, fmt.Errorf("read profile %s: gzip: %w", path, err)
		}
		limit := maxBytes * decompressFactor
		raw, err := io.ReadAll(io.LimitReader(zr, limit+1))
		if err == nil && int64(len(raw)) > limit {
			err = &LimitError{Limit: "MaxFileBytes", What: fmt.Sprintf("decompressed size (%d× MaxFileBytes)", decompressFactor), Max: limit}
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = fmt.Errorf("truncated gzip stream: %w", err)
			}
			return nil, 0, fmt.Errorf("read profile %s: %w", path, err)
		}
		b = raw
	}
	p, err := profile.ParseData(b)
	if err != nil {
		return nil, 0, fmt.Errorf("parse profile %s: %w", path, err)
	}
	if len(p.SampleType) == 0 {
		return nil, 0, fmt.Errorf("parse profile %s: no sample types", path)
	}
	return p, size, nil
}

// decompressFactor bounds the decompressed size of a profile relative to the file
// limit; pprof protobufs compress about 5-10×.
const decompressFactor = index.DecompressFactor
