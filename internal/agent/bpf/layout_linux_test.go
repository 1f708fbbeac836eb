//go:build linux

package bpf

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"reflect"
	"strings"
	"testing"
	"unicode"

	"github.com/cilium/ebpf/btf"
)

// TestGoTypesMatchTheBPFLayout fails when the Go mirrors of the C structs (generated
// by bpf2go, but committed, and used by Drain) no longer match the BTF of the
// committed object, or when a map's key or value is no longer the type Drain reads.
func TestGoTypesMatchTheBPFLayout(t *testing.T) {
	spec, err := loadSampler()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"counts0", "counts1"} {
		m := spec.Maps[name]
		assertLayout(t, name+" key", m.Key, reflect.TypeFor[samplerSampleKey]())
		assertLayout(t, name+" value", m.Value, reflect.TypeFor[uint64]())
	}
	assertLayout(t, "stats value", spec.Maps["stats"].Value, reflect.TypeFor[samplerSampleStats]())
	assertLayout(t, "stats key", spec.Maps["stats"].Key, reflect.TypeFor[uint32]())
	assertLayout(t, "active_gen value", spec.Maps["active_gen"].Value, reflect.TypeFor[uint32]())
	assertLayout(t, "excluded_tgids key", spec.Maps["excluded_tgids"].Key, reflect.TypeFor[uint32]())
	assertLayout(t, "excluded_tgids value", spec.Maps["excluded_tgids"].Value, reflect.TypeFor[uint8]())
	for _, name := range []string{"stacks0", "stacks1"} {
		m := spec.Maps[name]
		if m.KeySize != 4 || m.ValueSize != MaxStackDepth*8 {
			t.Errorf("%s: key %d bytes, value %d bytes; Drain reads uint32 ids and [%d]uint64 stacks",
				name, m.KeySize, m.ValueSize, MaxStackDepth)
		}
	}
	v := spec.Variables["exclude_idle"]
	if v == nil || v.Size() != 4 {
		t.Errorf("exclude_idle: %v, want a 4-byte constant set by configureSpec", v)
	}
}

func assertLayout(t *testing.T, what string, bt btf.Type, gt reflect.Type) {
	t.Helper()
	if bt == nil {
		t.Errorf("%s: no BTF type", what)
		return
	}
	size, err := btf.Sizeof(bt)
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	if uintptr(size) != gt.Size() {
		t.Errorf("%s: C %s is %d bytes, Go %s is %d", what, bt, size, gt, gt.Size())
	}
	st, ok := btf.UnderlyingType(bt).(*btf.Struct)
	if !ok {
		if gt.Kind() == reflect.Struct {
			t.Errorf("%s: C %s is not a struct, Go %s is", what, bt, gt)
		}
		return
	}
	var fields []reflect.StructField
	for i := range gt.NumField() {
		if f := gt.Field(i); f.Name != "_" { // structs.HostLayout and padding
			fields = append(fields, f)
		}
	}
	if len(fields) != len(st.Members) {
		t.Errorf("%s: C %s has %d members, Go %s has %d fields", what, st.Name, len(st.Members), gt, len(fields))
		return
	}
	for i, m := range st.Members {
		f := fields[i]
		msize, err := btf.Sizeof(m.Type)
		if err != nil {
			t.Errorf("%s.%s: %v", what, m.Name, err)
			continue
		}
		if goName(m.Name) != f.Name || uintptr(m.Offset.Bytes()) != f.Offset || uintptr(msize) != f.Type.Size() {
			t.Errorf("%s: C member %s at %d (%d bytes) vs Go field %s at %d (%d bytes)",
				what, m.Name, m.Offset.Bytes(), msize, f.Name, f.Offset, f.Type.Size())
		}
	}
}

// goName is bpf2go's naming: snake_case to CamelCase.
func goName(c string) string {
	var b strings.Builder
	for part := range strings.SplitSeq(c, "_") {
		if part == "" {
			continue
		}
		r := []rune(part)
		r[0] = unicode.ToUpper(r[0])
		b.WriteString(string(r))
	}
	return b.String()
}

// TestObjectsAreGeneratedFromTheCSources fails when the C sources were changed
// without `go generate` (c.sha256 is written by the same go:generate run).
func TestObjectsAreGeneratedFromTheCSources(t *testing.T) {
	f, err := os.Open("c.sha256")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recorded := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, path, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("c.sha256: bad line %q", sc.Text())
		}
		recorded[path] = sum
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir("c")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		path := "c/" + e.Name()
		if !strings.HasSuffix(path, ".c") && !strings.HasSuffix(path, ".h") {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		want, ok := recorded[path]
		delete(recorded, path)
		switch {
		case !ok:
			t.Errorf("%s is not in c.sha256: run go generate ./internal/agent/bpf/ and commit the outputs", path)
		case hex.EncodeToString(sum[:]) != want:
			t.Errorf("%s changed since the BPF objects were generated: run go generate ./internal/agent/bpf/ and commit the outputs", path)
		}
	}
	for path := range recorded {
		t.Errorf("c.sha256 lists %s, which is gone: run go generate ./internal/agent/bpf/", path)
	}
}
