package local

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// checkFields walks the YAML of a config file against Config and reports the first
// field that does not exist, is set twice, or holds a value of the wrong type, by its
// line and its full path (line 4: field onDemand.intervalSeconds: cannot unmarshal
// "abc" into an integer), listing the fields valid where one is unknown. The decoder
// that follows checks the same things, but names Go types rather than lines and paths.
func checkFields(data []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil // an empty file: the validation that follows says what is missing
	}
	return walkFields(doc.Content[0], reflect.TypeFor[Config](), "")
}

// walkFields checks the YAML node n against the Go type t of the field at path.
func walkFields(n *yaml.Node, t reflect.Type, path string) error {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil // null leaves any field at its zero value
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		return walkStruct(n, t, path)
	case reflect.Map:
		return walkMap(n, t, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return mismatch(n, path, "a list")
		}
		for i, item := range n.Content {
			if err := walkFields(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		return nil
	}
	return checkScalar(n, t, path)
}

// walkStruct checks a mapping against the JSON fields of the struct type t:
// every key a field, each once.
func walkStruct(n *yaml.Node, t reflect.Type, path string) error {
	if n.Kind != yaml.MappingNode {
		return mismatch(n, path, "a mapping of fields")
	}
	fields := jsonFields(t)
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value == "<<" { // a merge key: its fields are checked by the decoder
			continue
		}
		at := join(path, k.Value)
		if line, dup := seen[k.Value]; dup {
			return fmt.Errorf("line %d: field %s: already set at line %d", k.Line, at, line)
		}
		seen[k.Value] = k.Line
		f, ok := fields[k.Value]
		if !ok {
			known := make([]string, 0, len(fields))
			for name := range fields {
				known = append(known, name)
			}
			sort.Strings(known)
			return fmt.Errorf("line %d: field %s: unknown field (want one of %s)", k.Line, at, strings.Join(known, ", "))
		}
		if err := walkFields(v, f.Type, at); err != nil {
			return err
		}
	}
	return nil
}

// walkMap checks a mapping against the map type t: plain keys, each once.
func walkMap(n *yaml.Node, t reflect.Type, path string) error {
	if n.Kind != yaml.MappingNode {
		return mismatch(n, path, "a mapping")
	}
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		at := fmt.Sprintf("%s[%s]", path, strconv.Quote(k.Value))
		if k.Kind != yaml.ScalarNode {
			return fmt.Errorf("line %d: field %s: a key must be a plain value", k.Line, path)
		}
		if line, dup := seen[k.Value]; dup {
			return fmt.Errorf("line %d: field %s: already set at line %d", k.Line, at, line)
		}
		seen[k.Value] = k.Line
		if err := walkFields(v, t.Elem(), at); err != nil {
			return err
		}
	}
	return nil
}

// checkScalar checks a value of a string, boolean or number type t.
func checkScalar(n *yaml.Node, t reflect.Type, path string) error {
	switch t.Kind() {
	case reflect.String:
		// Any scalar: the decoder turns numbers and booleans into their text.
		if n.Kind != yaml.ScalarNode {
			return mismatch(n, path, "a string")
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			return mismatch(n, path, "a boolean (true or false)")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		var v int64
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&v) != nil {
			return mismatch(n, path, "an integer")
		}
		if bits := t.Bits(); v < -1<<(bits-1) || v > 1<<(bits-1)-1 {
			return fmt.Errorf("line %d: field %s: %s is out of range", n.Line, path, n.Value)
		}
	case reflect.Float32, reflect.Float64:
		var v float64
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") || n.Decode(&v) != nil || math.IsInf(v, 0) || math.IsNaN(v) {
			return mismatch(n, path, "a number")
		}
	}
	return nil
}

// mismatch reports a value of the wrong type at path.
func mismatch(n *yaml.Node, path, want string) error {
	var got string
	switch n.Kind {
	case yaml.MappingNode:
		got = "a mapping"
	case yaml.SequenceNode:
		got = "a list"
	default:
		got = strconv.Quote(n.Value)
	}
	if path == "" {
		return fmt.Errorf("line %d: the config file must be %s, got %s", n.Line, want, got)
	}
	return fmt.Errorf("line %d: field %s: cannot unmarshal %s into %s", n.Line, path, got, want)
}

func jsonFields(t reflect.Type) map[string]reflect.StructField {
	out := make(map[string]reflect.StructField, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		out[name] = f
	}
	return out
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}
