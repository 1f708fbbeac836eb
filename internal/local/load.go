package local

import (
	_ "embed"
	"fmt"
	"io"
	"os"

	"sigs.k8s.io/yaml"
)

// MaxConfigBytes bounds the size of a config file.
const MaxConfigBytes = 1 << 20

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the embedded default config file.
func DefaultYAML() []byte { return append([]byte(nil), defaultYAML...) }

// Default returns the embedded default config, defaulted and validated.
func Default() (Config, error) {
	c, err := Parse(defaultYAML)
	if err != nil {
		return Config{}, fmt.Errorf("parse embedded default config: %w", err)
	}
	return c, nil
}

// Parse decodes a config file strictly (an unknown or duplicate field, or a value of
// the wrong type, is an error naming its line and field), fills in defaults and
// validates the result.
func Parse(data []byte) (Config, error) {
	if err := checkFields(data); err != nil {
		return Config{}, fmt.Errorf("decode config: %w", err)
	}
	var c Config
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return Config{}, fmt.Errorf("decode config: %w", err)
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("invalid config: %w", err)
	}
	return c, nil
}

// Load reads and parses the config file at path.
func Load(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("open config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigBytes+1))
	if err != nil {
		return Config{}, fmt.Errorf("read config %s: %w", path, err)
	}
	if len(data) > MaxConfigBytes {
		return Config{}, fmt.Errorf("read config %s: larger than %d bytes", path, MaxConfigBytes)
	}
	c, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}
