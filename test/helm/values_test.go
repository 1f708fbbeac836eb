package helm

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestEveryValueIsDocumentedAndInTheSchema: each key of values.yaml has a comment line right
// above it, each is a property of values.schema.json, and each schema property has a default
// in values.yaml (so the two cannot drift apart).
func TestEveryValueIsDocumentedAndInTheSchema(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("every key of values.yaml has a comment above it", func(t *testing.T) {
		key := regexp.MustCompile(`^(\s*)([A-Za-z0-9][-\w.]*):`)
		lines := strings.Split(string(raw), "\n")
		blockIndent := -1 // inside a "key: |" block scalar: lines indented deeper than its key
		for i, line := range lines {
			indent := len(line) - len(strings.TrimLeft(line, " "))
			if blockIndent >= 0 {
				if strings.TrimSpace(line) == "" || indent > blockIndent {
					continue
				}
				blockIndent = -1
			}
			m := key.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			if strings.HasSuffix(strings.TrimSpace(line), "|") {
				blockIndent = indent
			}
			prev := ""
			if i > 0 {
				prev = strings.TrimSpace(lines[i-1])
			}
			if !strings.HasPrefix(prev, "#") {
				t.Errorf("values.yaml:%d: %s has no comment line above it", i+1, m[2])
			}
		}
	})

	var values map[string]any
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatalf("values.yaml: %v", err)
	}
	var schema map[string]any
	data, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatalf("values.schema.json: %v", err)
	}
	defs, _ := schema["definitions"].(map[string]any)
	resolve := func(s map[string]any) map[string]any {
		if ref, ok := s["$ref"].(string); ok {
			d, _ := defs[strings.TrimPrefix(ref, "#/definitions/")].(map[string]any)
			return d
		}
		return s
	}

	t.Run("every object of the schema is closed", func(t *testing.T) {
		var walk func(s map[string]any, path string)
		walk = func(s map[string]any, path string) {
			if props, ok := s["properties"].(map[string]any); ok {
				if s["additionalProperties"] != false {
					t.Errorf("%s: has properties but not additionalProperties: false", path)
				}
				for name, p := range props {
					if ps, ok := p.(map[string]any); ok {
						walk(ps, path+"."+name)
					}
				}
			}
			for _, k := range []string{"items", "additionalProperties"} {
				if ps, ok := s[k].(map[string]any); ok {
					walk(ps, path+"."+k)
				}
			}
			for _, k := range []string{"anyOf", "oneOf"} {
				alts, _ := s[k].([]any)
				for i, a := range alts {
					if ps, ok := a.(map[string]any); ok {
						walk(ps, path+"."+k+"["+string(rune('0'+i))+"]")
					}
				}
			}
		}
		walk(schema, "values")
		for name, d := range defs {
			walk(d.(map[string]any), "definitions."+name)
		}
	})

	t.Run("every property of the schema has a default in values.yaml", func(t *testing.T) {
		// Objects whose properties are Kubernetes fields or maps: values.yaml need not list them all.
		open := []string{"resources", "affinity", "podSecurityContext", "securityContext", "labelSelector", "seccompProfile", "appArmorProfile"}
		var walk func(s map[string]any, v any, path string)
		walk = func(s map[string]any, v any, path string) {
			ref, _ := s["$ref"].(string)
			if slices.Contains(open, strings.TrimPrefix(ref, "#/definitions/")) {
				return
			}
			s = resolve(s)
			props, ok := s["properties"].(map[string]any)
			if !ok {
				return
			}
			vm, _ := v.(map[string]any)
			for name, p := range props {
				if name == "global" {
					continue
				}
				pv, ok := vm[name]
				if !ok {
					t.Errorf("%s.%s is in the schema but not in values.yaml", path, name)
					continue
				}
				if ps, ok := p.(map[string]any); ok {
					walk(ps, pv, path+"."+name)
				}
			}
		}
		walk(schema, values, "values")
	})
}
