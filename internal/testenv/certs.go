package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// frontProxyClientName is the CN of the client certificate kube-apiserver's aggregator presents to
// extension API servers (metrics-server), and the only name --requestheader-allowed-names accepts.
const frontProxyClientName = "front-proxy-client"

// frontProxyFiles are the PEM files of kube-apiserver's aggregation layer (the "front proxy").
type frontProxyFiles struct {
	CA, ClientCert, ClientKey string
}

// writeFrontProxyCerts writes a fresh front-proxy CA and a client certificate signed by it into dir.
func writeFrontProxyCerts(dir string) (frontProxyFiles, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return frontProxyFiles{}, fmt.Errorf("generate front-proxy CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kprof-testenv-front-proxy-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return frontProxyFiles{}, fmt.Errorf("sign front-proxy CA: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return frontProxyFiles{}, fmt.Errorf("parse front-proxy CA: %w", err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return frontProxyFiles{}, fmt.Errorf("generate front-proxy client key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: frontProxyClientName},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return frontProxyFiles{}, fmt.Errorf("sign front-proxy client certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return frontProxyFiles{}, fmt.Errorf("marshal front-proxy client key: %w", err)
	}

	f := frontProxyFiles{
		CA:         filepath.Join(dir, "front-proxy-ca.crt"),
		ClientCert: filepath.Join(dir, "front-proxy-client.crt"),
		ClientKey:  filepath.Join(dir, "front-proxy-client.key"),
	}
	for path, block := range map[string]*pem.Block{
		f.CA:         {Type: "CERTIFICATE", Bytes: caDER},
		f.ClientCert: {Type: "CERTIFICATE", Bytes: der},
		f.ClientKey:  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			return frontProxyFiles{}, fmt.Errorf("write %s: %w", path, err)
		}
	}
	return f, nil
}
