package collection

import (
	_ "embed"
	"fmt"
)

// DefaultSource is the Source of the embedded default config.
const DefaultSource = "(embedded default)"

// DefaultYAML is the embedded default profile collection config: cpu-clock
// at 19 Hz, one profile every 10 s.
//
//go:embed default.yaml
var DefaultYAML []byte

// Default returns the embedded default config, parsed and validated.
func Default() CollectionConfig {
	c, err := ParseFile(DefaultSource, DefaultYAML)
	if err != nil {
		panic(fmt.Sprintf("the embedded default config is invalid: %v", err)) // a test keeps this from shipping
	}
	return c
}
