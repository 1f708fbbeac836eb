package ui

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestServerConfigValidateNamesEachBadField(t *testing.T) {
	ok := http.NotFoundHandler()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, tc := range []struct {
		name string
		cfg  ServerConfig
		want []string
	}{
		{"no handler and no address", ServerConfig{}, []string{"Handler: required", "Listen: \"\": want HOST:PORT"}},
		{"a port without a host part", ServerConfig{Handler: ok, Listen: "8080"}, []string{`Listen: "8080": want HOST:PORT`}},
		{"a port that is no number", ServerConfig{Handler: ok, Listen: ":eighty"}, []string{`Listen: ":eighty": bad port`}},
		{"both an address and a listener", ServerConfig{Handler: ok, Listen: ":8080", Listener: ln}, []string{`Listen ":8080" and Listener: set one of them`}},
	} {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			_, err := NewServer(tc.cfg)
			if err == nil {
				t.Fatal("NewServer accepted it")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	for _, addr := range []string{":8082", "127.0.0.1:0", "[::1]:9000"} {
		if err := (ServerConfig{Handler: ok, Listen: addr}).Validate(); err != nil {
			t.Errorf("Listen %q: %v", addr, err)
		}
	}
}

func TestServerServesWithTheSharedTimeoutsAndShutsDownOnce(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "hello") })
	s, err := NewServer(ServerConfig{Listen: "127.0.0.1:0", Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	if s.srv.ReadHeaderTimeout != ReadHeaderTimeout || s.srv.ReadTimeout != ReadTimeout || s.srv.WriteTimeout != WriteTimeout ||
		s.srv.IdleTimeout != IdleTimeout || s.srv.MaxHeaderBytes != MaxHeaderBytes {
		t.Errorf("server timeouts %+v, want the shared ones", s.srv)
	}
	if s.Addr() != nil {
		t.Errorf("Addr before Start = %v, want nil", s.Addr())
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err == nil {
		t.Error("a second Start succeeded")
	}
	url := "http://" + s.Addr().String() + "/"
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello" {
		t.Errorf("GET %s = %q", url, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	if _, err := hc.Get(url); err == nil {
		t.Error("the server still answers after Shutdown")
	}
	select {
	case err := <-s.Err():
		t.Errorf("Err after Shutdown: %v, want nothing", err)
	default:
	}
	if err := s.Start(t.Context()); err == nil {
		t.Error("Start after Shutdown succeeded")
	}
}

func TestServerShutdownWithoutStartClosesTheGivenListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(ServerConfig{Listener: ln, Handler: http.NotFoundHandler()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept on the listener after Shutdown: %v, want it closed", err)
	}
}

func TestServerStartNamesTheAddressItCannotListenOn(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	s, err := NewServer(ServerConfig{Listen: busy.Addr().String(), Handler: http.NotFoundHandler()})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Start(t.Context())
	if err == nil || !strings.Contains(err.Error(), "listen on "+busy.Addr().String()) {
		t.Fatalf("Start on a busy port: %v, want an error naming %s", err, busy.Addr())
	}
	if err := s.Shutdown(t.Context()); err != nil {
		t.Errorf("Shutdown after a failed Start: %v", err)
	}
}
