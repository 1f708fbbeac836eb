package main

import "testing"

func TestDefaultListen(t *testing.T) {
	for _, tc := range []struct {
		name, port, want string
	}{
		{"without PORT the app listens on loopback", "", "127.0.0.1:6060"},
		{"with PORT, as in a container, it listens on all interfaces", "8080", ":8080"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PORT", tc.port)
			if got := defaultListen(); got != tc.want {
				t.Fatalf("defaultListen() with PORT=%q = %q, want %q", tc.port, got, tc.want)
			}
		})
	}
}
