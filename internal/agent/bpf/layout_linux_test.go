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

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/kprof/kprof/internal/agent/unwind"
)

// TestGoTypesMatchTheBPFLayout fails when the Go mirrors of the C structs (generated
// by bpf2go, but committed, and used by Drain) no longer match the BTF of the
// committed object, or when a map's key or value is no longer the type Drain reads.
func TestGoTypesMatchTheBPFLayout(t *testing.T) {
	for _, p := range []program{unwinderProgram, framePointerProgram} {
		t.Run("the "+p.String()+" program", func(t *testing.T) {
			spec, err := programSpec(p)
			if err != nil {
				t.Fatal(err)
			}
			checkLayout(t, spec)
		})
	}
}

func checkLayout(t *testing.T, spec *ebpf.CollectionSpec) {
	kv := func(name string, key, value reflect.Type) {
		t.Helper()
		m := spec.Maps[name]
		if m == nil {
			t.Errorf("no map %s", name)
			return
		}
		assertLayout(t, name+" key", m.Key, key)
		assertLayout(t, name+" value", m.Value, value)
	}
	for _, name := range []string{"counts0", "counts1"} {
		kv(name, reflect.TypeFor[samplerSampleKey](), reflect.TypeFor[uint64]())
	}
	for _, name := range []string{"stacks0", "stacks1"} {
		kv(name, reflect.TypeFor[uint64](), reflect.TypeFor[samplerStack]())
	}
	kv("scratch", reflect.TypeFor[uint32](), reflect.TypeFor[samplerStack]())
	kv("stats", reflect.TypeFor[uint32](), reflect.TypeFor[samplerSampleStats]())
	kv("active_gen", reflect.TypeFor[uint32](), reflect.TypeFor[uint32]())
	kv("excluded_tgids", reflect.TypeFor[uint32](), reflect.TypeFor[uint8]())
	kv("unwind_rows", reflect.TypeFor[uint32](), reflect.TypeFor[samplerUnwindRow]())
	kv("processes", reflect.TypeFor[uint32](), reflect.TypeFor[samplerProcess]())
	kv("unknown", reflect.TypeFor[uint32](), reflect.TypeFor[uint32]())

	// The arrays inside the structs: frames per stack, mappings per process.
	arrayOf := func(what string, bt btf.Type, member string) *btf.Array {
		t.Helper()
		st, ok := btf.UnderlyingType(bt).(*btf.Struct)
		if !ok {
			t.Fatalf("%s: not a struct", what)
		}
		for _, m := range st.Members {
			if m.Name == member {
				if a, ok := btf.UnderlyingType(m.Type).(*btf.Array); ok {
					return a
				}
			}
		}
		t.Fatalf("%s has no array %s", what, member)
		return nil
	}
	if a := arrayOf("struct stack", spec.Maps["stacks0"].Value, "pcs"); a.Nelems != MaxStackDepth {
		t.Errorf("struct stack holds %d frames, MaxStackDepth is %d", a.Nelems, MaxStackDepth)
	}
	maps := arrayOf("struct process", spec.Maps["processes"].Value, "maps")
	if maps.Nelems != MaxMappings {
		t.Errorf("struct process holds %d mappings, MaxMappings is %d", maps.Nelems, MaxMappings)
	}
	assertLayout(t, "struct mapping", maps.Type, reflect.TypeFor[samplerMapping]())

	// The CFA rules: the C enum and internal/agent/unwind must agree.
	v := spec.Variables["cfa_types"]
	if v == nil {
		t.Fatal("no variable cfa_types: enum cfa_type is not in the BTF")
	}
	enum, ok := btf.UnderlyingType(v.Type.Type).(*btf.Enum)
	if !ok {
		t.Fatalf("cfa_types is a %s, not enum cfa_type", v.Type.Type)
	}
	want := map[string]unwind.CFAType{
		"CFA_NONE": unwind.CFANone, "CFA_RSP": unwind.CFARSP, "CFA_RBP": unwind.CFARBP,
		"CFA_PLT": unwind.CFAPLT, "CFA_END": unwind.CFAEnd,
	}
	if len(enum.Values) != len(want) {
		t.Errorf("enum cfa_type has %d values, internal/agent/unwind %d", len(enum.Values), len(want))
	}
	for _, ev := range enum.Values {
		if w, ok := want[ev.Name]; !ok || uint64(w) != ev.Value {
			t.Errorf("C %s = %d; internal/agent/unwind has %v (known: %v)", ev.Name, ev.Value, w, ok)
		}
	}

	ex := spec.Variables["exclude_idle"]
	if ex == nil || ex.Size() != 4 {
		t.Errorf("exclude_idle: %v, want a 4-byte constant set by configureSpec", ex)
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
