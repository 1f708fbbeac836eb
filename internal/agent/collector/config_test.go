package collector

import (
	"strings"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/agent/collection"
	"github.com/kprof/kprof/internal/agent/profile"
)

type noSymbols struct{}

func (noSymbols) Observe(int32) error                  { return nil }
func (noSymbols) User(int32, []uint64) []profile.Frame { return nil }
func (noSymbols) Kernel([]uint64) []profile.Frame      { return nil }

func TestValidateNamesEveryBadField(t *testing.T) {
	good := collection.CollectionConfig{Name: "cpu", Version: 1, Event: "cpu-clock", Frequency: 99, Interval: 10 * time.Second}
	publish := func(*profile.Event) {}
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error; none means valid
	}{
		{"a complete config is valid", Config{Collection: good, Symbolizer: noSymbols{}, Publish: publish}, nil},
		{"a missing symbolizer and publisher are both named", Config{Collection: good}, []string{"Symbolizer", "Publish"}},
		{"a bad collection config names its field", Config{Collection: collection.CollectionConfig{Name: "cpu", Event: "cpu-clock", Frequency: 99}, Symbolizer: noSymbols{}, Publish: publish}, []string{"Collection", "Interval"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.SetDefaults()
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if tt.cfg.Logger == nil {
					t.Error("SetDefaults left Logger nil")
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted a bad config")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
		})
	}
}
