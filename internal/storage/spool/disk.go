package spool

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"strings"
	"time"

	"github.com/kprof/kprof/internal/storage"
	"github.com/kprof/kprof/internal/storage/durable"
)

// On-disk format. The spool directory is flat. An entry with id ID is two files:
//
//	ID.data  the profile bytes, exactly as passed to Put
//	ID.json  the sidecar: {"version":1,"key":...,"meta":{...},"size":N,"sha256":"hex","enqueuedAt":RFC3339}
//
// ID is the enqueue time (UTC, "20060102T150405.000000000Z") and 16 random hex
// digits, so names sort by age. Both files are written to ".tmp-*" files,
// fsynced, renamed into place data first, sidecar last, and the directory is
// fsynced. The sidecar is the commit record: an entry exists when its sidecar
// does. Removal deletes the sidecar first, then the data. So an interrupted Put
// or removal leaves at most a ".tmp-*" file (deleted by New) or a data file
// without a sidecar (evicted as corrupt by New: it cannot be told apart from a
// lost sidecar, and a profile is never dropped silently).
const (
	dataSuffix    = ".data"
	sidecarSuffix = ".json"
	tempPrefix    = durable.TempPrefix
	idTimeLayout  = "20060102T150405.000000000Z"

	sidecarVersion = 1
	// maxSidecarBytes bounds reading a sidecar (metadata with labels).
	maxSidecarBytes = 1 << 20

	dirPerm  = 0o700
	filePerm = 0o600
)

// sidecar is the JSON document stored beside each entry's data.
type sidecar struct {
	Version    int          `json:"version"`
	Key        string       `json:"key"`
	Meta       storage.Meta `json:"meta"`
	Size       int64        `json:"size"`
	SHA256     string       `json:"sha256"`
	EnqueuedAt time.Time    `json:"enqueuedAt"`
}

func (sc *sidecar) validate() error {
	switch {
	case sc.Version != sidecarVersion:
		return fmt.Errorf("unsupported sidecar version %d", sc.Version)
	case sc.Key == "":
		return errors.New("sidecar has no key")
	case sc.Size < 0:
		return fmt.Errorf("sidecar size %d is negative", sc.Size)
	case sc.EnqueuedAt.IsZero():
		return errors.New("sidecar has no enqueue time")
	}
	if b, err := hex.DecodeString(sc.SHA256); err != nil || len(b) != sha256.Size {
		return fmt.Errorf("sidecar sha256 %q is not a hex SHA-256", sc.SHA256)
	}
	return nil
}

func newID(enqueued time.Time) (string, error) {
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", fmt.Errorf("random entry id: %w", err)
	}
	return enqueued.UTC().Format(idTimeLayout) + "-" + hex.EncodeToString(rnd[:]), nil
}

// writeEntry durably writes an entry's data and sidecar into the directory of
// root. abort is checked just before the files are renamed into place; when it
// returns an error, nothing is left behind.
func writeEntry(root *os.Root, id string, data []byte, sc *sidecar, abort func() error) error {
	scJSON, err := json.Marshal(sc)
	if err != nil {
		return fmt.Errorf("encode sidecar: %w", err)
	}
	dataTmp, err := durable.WriteTemp(root, ".", data, filePerm)
	if err != nil {
		return fmt.Errorf("write data: %w", err)
	}
	defer func() { _ = root.Remove(dataTmp) }() // no-op once renamed
	scTmp, err := durable.WriteTemp(root, ".", scJSON, filePerm)
	if err != nil {
		return fmt.Errorf("write sidecar: %w", err)
	}
	defer func() { _ = root.Remove(scTmp) }()

	if err := abort(); err != nil {
		return err
	}
	if err := root.Rename(dataTmp, id+dataSuffix); err != nil {
		return fmt.Errorf("rename data into place: %w", err)
	}
	if err := root.Rename(scTmp, id+sidecarSuffix); err != nil {
		_ = root.Remove(id + dataSuffix)
		return fmt.Errorf("rename sidecar into place: %w", err)
	}
	if err := durable.SyncDir(root, "."); err != nil {
		// The entry may not survive a crash, so it is not acknowledged: undo it.
		_ = root.Remove(id + sidecarSuffix)
		_ = root.Remove(id + dataSuffix)
		return fmt.Errorf("fsync spool directory: %w", err)
	}
	return nil
}

// removeEntry deletes an entry's sidecar, then its data, and fsyncs the
// directory. Missing files are not an error.
func removeEntry(root *os.Root, id string) error {
	var errs []error
	for _, name := range []string{id + sidecarSuffix, id + dataSuffix} {
		if err := root.Remove(name); err != nil && !errors.Is(err, iofs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := durable.SyncDir(root, "."); err != nil {
		errs = append(errs, fmt.Errorf("fsync spool directory: %w", err))
	}
	return errors.Join(errs...)
}

// errCorrupt marks an entry whose files do not match its sidecar.
var errCorrupt = errors.New("corrupt spool entry")

// readData reads an entry's data and checks its size and SHA-256 against the
// sidecar. A missing file or a mismatch is errCorrupt; other errors (I/O) are
// returned as they are, since the entry may be fine.
func readData(root *os.Root, id string, size int64, sum [sha256.Size]byte) ([]byte, error) {
	f, err := root.Open(id + dataSuffix)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil, fmt.Errorf("%w: data file missing", errCorrupt)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data := make([]byte, size)
	if _, err := io.ReadFull(f, data); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: data file shorter than %d bytes", errCorrupt, size)
		}
		return nil, err
	}
	var extra [1]byte
	if n, _ := f.Read(extra[:]); n > 0 {
		return nil, fmt.Errorf("%w: data file longer than %d bytes", errCorrupt, size)
	}
	if got := sha256.Sum256(data); got != sum {
		return nil, fmt.Errorf("%w: data sha256 %s does not match the sidecar's %s",
			errCorrupt, hex.EncodeToString(got[:]), hex.EncodeToString(sum[:]))
	}
	return data, nil
}

// readSidecar reads and validates the sidecar of id.
func readSidecar(root *os.Root, id string) (*sidecar, error) {
	f, err := root.Open(id + sidecarSuffix)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSidecarBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxSidecarBytes {
		return nil, fmt.Errorf("%w: sidecar larger than %d bytes", errCorrupt, maxSidecarBytes)
	}
	// Unknown fields are allowed, so a sidecar written before storage.Meta lost a
	// field still loads.
	var sc sidecar
	if err := json.Unmarshal(b, &sc); err != nil {
		return nil, fmt.Errorf("%w: decode sidecar: %v", errCorrupt, err)
	}
	if err := sc.validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	return &sc, nil
}

// dirListing is what scanDir found in the spool directory.
type dirListing struct {
	sidecars map[string]bool  // ids with a sidecar
	data     map[string]int64 // ids with a data file -> size
	temps    []string         // ".tmp-*" files
	unknown  []string         // anything else
}

func scanDir(root *os.Root) (*dirListing, error) {
	d, err := root.Open(".")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	ents, err := d.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	l := &dirListing{sidecars: map[string]bool{}, data: map[string]int64{}}
	for _, de := range ents {
		name := de.Name()
		if !de.Type().IsRegular() {
			l.unknown = append(l.unknown, name)
			continue
		}
		switch {
		case durable.IsTemp(name):
			l.temps = append(l.temps, name)
		case strings.HasSuffix(name, sidecarSuffix) && validID(strings.TrimSuffix(name, sidecarSuffix)):
			l.sidecars[strings.TrimSuffix(name, sidecarSuffix)] = true
		case strings.HasSuffix(name, dataSuffix) && validID(strings.TrimSuffix(name, dataSuffix)):
			info, err := de.Info()
			if err != nil {
				return nil, fmt.Errorf("stat %s: %w", name, err)
			}
			l.data[strings.TrimSuffix(name, dataSuffix)] = info.Size()
		default:
			l.unknown = append(l.unknown, name)
		}
	}
	return l, nil
}

// validID reports whether s has the shape of an id made by newID.
func validID(s string) bool {
	ts, rnd, ok := strings.Cut(s, "-")
	if !ok || len(rnd) != 16 {
		return false
	}
	if _, err := hex.DecodeString(rnd); err != nil {
		return false
	}
	_, err := time.Parse(idTimeLayout, ts)
	return err == nil
}
