package otlp

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/pprofile"
	"go.opentelemetry.io/collector/pdata/pprofile/pprofileotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/stats"
)

// fakeCollector is an in-process OTLP gRPC server with the profiles and
// metrics services. It answers each call with the next of its scripted
// replies (then success) and records what it accepted.
type fakeCollector struct {
	endpoint string

	mu       sync.Mutex
	replies  []reply
	calls    int
	profiles []pprofile.Profiles
	metrics  []pmetric.Metrics
	headers  []metadata.MD
	peers    []string // client certificate CN of each call, "" without one
	encoding []string // grpc-encoding of each call
}

// reply is what the fake answers to one call.
type reply struct {
	err      error
	rejected int64  // partial success: rejected items
	message  string // partial success message
	block    bool   // wait until the call's ctx is done (an attempt timeout)
}

// startFakeCollector serves on a free loopback port until t ends; creds nil
// is plaintext.
func startFakeCollector(t *testing.T, creds credentials.TransportCredentials, replies ...reply) *fakeCollector {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeCollector{endpoint: l.Addr().String(), replies: replies}
	opts := []grpc.ServerOption{grpc.StatsHandler(f)}
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	}
	srv := grpc.NewServer(opts...)
	pprofileotlp.RegisterGRPCServer(srv, &fakeProfiles{f: f})
	pmetricotlp.RegisterGRPCServer(srv, &fakeMetrics{f: f})
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return f
}

// next records a call and returns its reply.
func (f *fakeCollector) next(ctx context.Context) reply {
	f.mu.Lock()
	f.calls++
	md, _ := metadata.FromIncomingContext(ctx)
	f.headers = append(f.headers, md.Copy())
	cn := ""
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
			cn = ti.State.PeerCertificates[0].Subject.CommonName
		}
	}
	f.peers = append(f.peers, cn)
	var r reply
	if len(f.replies) > 0 {
		r, f.replies = f.replies[0], f.replies[1:]
	}
	f.mu.Unlock()
	if r.block {
		<-ctx.Done()
		r.err = ctx.Err()
	}
	return r
}

func (f *fakeCollector) snapshot() (calls int, profiles []pprofile.Profiles, metrics []pmetric.Metrics) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, f.profiles, f.metrics
}

// TagRPC, HandleRPC, TagConn and HandleConn implement stats.Handler to see the
// compression of each request.
func (f *fakeCollector) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (f *fakeCollector) HandleRPC(_ context.Context, s stats.RPCStats) {
	if h, ok := s.(*stats.InHeader); ok {
		f.mu.Lock()
		f.encoding = append(f.encoding, h.Compression)
		f.mu.Unlock()
	}
}
func (f *fakeCollector) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (f *fakeCollector) HandleConn(context.Context, stats.ConnStats) {}

type fakeProfiles struct {
	pprofileotlp.UnimplementedGRPCServer
	f *fakeCollector
}

func (s *fakeProfiles) Export(ctx context.Context, req pprofileotlp.ExportRequest) (pprofileotlp.ExportResponse, error) {
	r := s.f.next(ctx)
	if r.err != nil {
		return pprofileotlp.NewExportResponse(), r.err
	}
	pd := pprofile.NewProfiles()
	req.Profiles().CopyTo(pd)
	s.f.mu.Lock()
	s.f.profiles = append(s.f.profiles, pd)
	s.f.mu.Unlock()
	resp := pprofileotlp.NewExportResponse()
	if r.rejected > 0 || r.message != "" {
		resp.PartialSuccess().SetRejectedProfiles(r.rejected)
		resp.PartialSuccess().SetErrorMessage(r.message)
	}
	return resp, nil
}

type fakeMetrics struct {
	pmetricotlp.UnimplementedGRPCServer
	f *fakeCollector
}

func (s *fakeMetrics) Export(ctx context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	r := s.f.next(ctx)
	if r.err != nil {
		return pmetricotlp.NewExportResponse(), r.err
	}
	md := pmetric.NewMetrics()
	req.Metrics().CopyTo(md)
	s.f.mu.Lock()
	s.f.metrics = append(s.f.metrics, md)
	s.f.mu.Unlock()
	resp := pmetricotlp.NewExportResponse()
	if r.rejected > 0 || r.message != "" {
		resp.PartialSuccess().SetRejectedDataPoints(r.rejected)
		resp.PartialSuccess().SetErrorMessage(r.message)
	}
	return resp, nil
}

// testPKI is a fresh CA, a server certificate for "collector.test" and
// 127.0.0.1, and a client certificate, as PEM files in a temp dir.
type testPKI struct {
	CAFile, ServerCert, ServerKey, ClientCert, ClientKey string
	pool                                                 *x509.CertPool
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	caKey := mustKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kprof-test-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{CAFile: filepath.Join(dir, "ca.crt"), pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	writePEM(t, p.CAFile, "CERTIFICATE", caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (certFile, keyFile string) {
		key := mustKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			DNSNames: []string{name}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
		writePEM(t, certFile, "CERTIFICATE", der)
		writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
		return certFile, keyFile
	}
	p.ServerCert, p.ServerKey = leaf("collector.test", 2, x509.ExtKeyUsageServerAuth)
	p.ClientCert, p.ClientKey = leaf("kprof-agent", 3, x509.ExtKeyUsageClientAuth)
	return p
}

// serverCreds requires a client certificate signed by the CA.
func (p *testPKI) serverCreds(t *testing.T) credentials.TransportCredentials {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(p.ServerCert, p.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	return credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{cert}, ClientCAs: p.pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
	})
}

func mustKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
