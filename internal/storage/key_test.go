package storage_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/storage"
	"github.com/kprof/kprof/internal/storage/fs"
)

func sampleMeta() storage.Meta {
	return storage.Meta{
		Namespace:  "shop",
		Pod:        "cart-7d9f",
		Node:       "node-1",
		Service:    "cart",
		Container:  "app",
		Target:     "shop/cart-7d9f",
		Type:       "cpu",
		CapturedAt: time.Date(2025, 3, 4, 5, 6, 7, 890_000_000, time.UTC),
	}
}

func TestRenderKey(t *testing.T) {
	tests := []struct {
		name   string
		tmpl   string
		prefix string
		edit   func(*storage.Meta)
		want   string
	}{
		{
			name:   "the default template renders every segment",
			tmpl:   storage.DefaultKeyTemplate,
			prefix: "profiles",
			want:   "profiles/shop/cart/2025-03-04/20250304T050607.890Z_cart-7d9f_cpu.pb.gz",
		},
		{
			name: "an empty prefix drops its segment",
			tmpl: storage.DefaultKeyTemplate,
			want: "shop/cart/2025-03-04/20250304T050607.890Z_cart-7d9f_cpu.pb.gz",
		},
		{
			name:   "a multi-segment prefix is kept with its slashes trimmed",
			tmpl:   storage.DefaultKeyTemplate,
			prefix: "/team/prod/",
			want:   "team/prod/shop/cart/2025-03-04/20250304T050607.890Z_cart-7d9f_cpu.pb.gz",
		},
		{
			name:   "traversal in the prefix is removed",
			tmpl:   "{prefix}/{type}/{timestamp}",
			prefix: "../../etc/./x",
			want:   "etc/x/cpu/20250304T050607.890Z",
		},
		{
			name: "a traversal value cannot leave its segment",
			tmpl: "{prefix}/{namespace}/{pod}/{timestamp}/{type}.pprof",
			edit: func(m *storage.Meta) { m.Namespace = "../x"; m.Pod = "../../etc/passwd" },
			want: "_._x/_._.._etc_passwd/20250304T050607.890Z/cpu.pprof",
		},
		{
			name: "a value of only dots becomes unknown",
			tmpl: "{namespace}/{service}/{timestamp}_{type}",
			edit: func(m *storage.Meta) { m.Namespace = ".."; m.Service = "." },
			want: "unknown/unknown/20250304T050607.890Z_cpu",
		},
		{
			name: "a leading dot cannot make a hidden or temporary file",
			tmpl: "{pod}/{timestamp}_{type}",
			edit: func(m *storage.Meta) { m.Pod = ".tmp-1" },
			want: "_tmp-1/20250304T050607.890Z_cpu",
		},
		{
			name:   "the namespace/pod layout renders as written",
			tmpl:   "{prefix}/{namespace}/{pod}/{timestamp}/{type}.pprof",
			prefix: "p",
			want:   "p/shop/cart-7d9f/20250304T050607.890Z/cpu.pprof",
		},
		{
			name: "the date/service layout renders as written",
			tmpl: "{date}/{service}/{timestamp}-{type}.pprof",
			want: "2025-03-04/cart/20250304T050607.890Z-cpu.pprof",
		},
		{
			name: "an empty value becomes unknown",
			tmpl: "{date}/{service}/{timestamp}-{type}.pprof",
			edit: func(m *storage.Meta) { m.Service = "" },
			want: "2025-03-04/unknown/20250304T050607.890Z-cpu.pprof",
		},
		{
			name: "unsafe characters are replaced one per character",
			tmpl: "{service}/{unix}_{type}",
			edit: func(m *storage.Meta) { m.Service = "pöd name/x" },
			want: "p_d_name_x/1741064767_cpu",
		},
		{
			name: "the capture time is rendered in UTC",
			tmpl: "{date}/{timestamp}_{type}",
			edit: func(m *storage.Meta) {
				m.CapturedAt = time.Date(2025, 3, 4, 23, 30, 0, 0, time.FixedZone("UTC-2", -2*3600))
			},
			want: "2025-03-05/20250305T013000.000Z_cpu",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := sampleMeta()
			if tt.edit != nil {
				tt.edit(&m)
			}
			got := storage.RenderKey(tt.tmpl, tt.prefix, m)
			if got != tt.want {
				t.Errorf("RenderKey(%q, %q) = %q, want %q", tt.tmpl, tt.prefix, got, tt.want)
			}
			if err := fs.CheckKey(got); err != nil {
				t.Errorf("rendered key %q is not a valid fs key: %v", got, err)
			}
		})
	}
}

func TestRenderKeyNeverEscapes(t *testing.T) {
	hostile := []string{"..", "../..", "/", "/etc", "a/../../b", `..\..`, ".", "...", "\x00", ".tmp-x", " ", "ä/..", "a//b"}
	for _, v := range hostile {
		m := storage.Meta{Namespace: v, Pod: v, Service: v, Node: v, Container: v, Target: v, Type: v}
		key := storage.RenderKey(storage.DefaultKeyTemplate, v, m)
		if err := fs.CheckKey(key); err != nil {
			t.Errorf("value %q rendered key %q, which is not a safe relative key: %v", v, key, err)
		}
	}
}

func TestEveryListedPlaceholderRenders(t *testing.T) {
	for _, ph := range storage.Placeholders {
		if got := storage.RenderKey(ph+"/{timestamp}_{type}", "p", sampleMeta()); strings.Contains(got, "{") {
			t.Errorf("placeholder %s is listed but renders as %q", ph, got)
		}
		if err := storage.ValidateKeyTemplate(ph + "/{timestamp}_{type}"); err != nil {
			t.Errorf("placeholder %s is listed but rejected: %v", ph, err)
		}
	}
}

func TestValidateKeyTemplate(t *testing.T) {
	tests := []struct {
		name    string
		tmpl    string
		wantErr string
	}{
		{name: "the default template is valid", tmpl: storage.DefaultKeyTemplate},
		{name: "the namespace/pod layout is valid", tmpl: "{prefix}/{namespace}/{pod}/{timestamp}/{type}.pprof"},
		{name: "the date/service layout is valid", tmpl: "{date}/{service}/{timestamp}-{type}.pprof"},
		{name: "unix seconds may replace the timestamp", tmpl: "{node}/{container}/{target}/{unix}-{type}"},
		{name: "an unknown placeholder is rejected by name", tmpl: "{prefix}/{nope}/{timestamp}_{type}", wantErr: "unknown placeholder {nope}"},
		{name: "placeholders are case sensitive", tmpl: "{Namespace}/{timestamp}_{type}", wantErr: "unknown placeholder {Namespace}"},
		{name: "a placeholder with a hyphen is rejected, not left as text", tmpl: "{service-name}/{timestamp}_{type}",
			wantErr: "unknown placeholder {service-name} (known: {prefix} {namespace} {service} {pod} {node} {container} {target} {type} {date} {timestamp} {unix})"},
		{name: "every unknown placeholder is named once", tmpl: "{pod_name}/{}/{pod_name}/{timestamp}_{type}", wantErr: "unknown placeholders {pod_name}, {} (known:"},
		{name: "a placeholder with a space or a digit is rejected", tmpl: "{ pod }/{v2}/{timestamp}_{type}", wantErr: "unknown placeholders { pod }, {v2}"},
		{name: "an unclosed brace is literal text", tmpl: "{pod/{timestamp}_{type}"},
		{name: "a template without the type is rejected", tmpl: "{namespace}/{timestamp}.pprof", wantErr: "must contain {type}"},
		{name: "a template without a time is rejected", tmpl: "{namespace}/{pod}/{type}.pprof", wantErr: "must contain {timestamp} or {unix}"},
		{name: "an empty template is rejected", tmpl: "  ", wantErr: "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := storage.ValidateKeyTemplate(tt.tmpl)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ValidateKeyTemplate(%q) = %v, want nil", tt.tmpl, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ValidateKeyTemplate(%q) = %v, want error containing %q", tt.tmpl, err, tt.wantErr)
			}
		})
	}
}
