package fleettest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Certs are PEM files of a test PKI: a CA, a server certificate for
// 127.0.0.1 and localhost, a client certificate (CN "dev0") signed by the
// CA, and one signed by another CA (must be refused).
type Certs struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
	RogueCert, RogueKey                              string
}

// GenerateCerts writes a fresh PKI into dir.
func GenerateCerts(dir string) (c *Certs, err error) {
	defer func() {
		if p := recover(); p != nil {
			c, err = nil, fmt.Errorf("certificates: %v", p)
		}
	}()
	c = &Certs{}
	caKey, caCert, caDER := newCA("otok test CA")
	c.CA = writePEM(dir, "ca.crt", "CERTIFICATE", caDER)
	c.ServerCert, c.ServerKey = leaf(dir, "server", caCert, caKey, true)
	c.ClientCert, c.ClientKey = leaf(dir, "dev0", caCert, caKey, false)
	rKey, rCert, _ := newCA("rogue CA")
	c.RogueCert, c.RogueKey = leaf(dir, "rogue", rCert, rKey, false)
	return c, nil
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

var serial int64 = 1

// keyAndTemplate returns a new P-256 key and a certificate template for
// cn with the next serial number, valid from an hour ago for a day.
func keyAndTemplate(cn string) (*ecdsa.PrivateKey, *x509.Certificate) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	serial++
	return k, &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
}

func newCA(cn string) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	k, tmpl := keyAndTemplate(cn)
	tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	tmpl.KeyUsage |= x509.KeyUsageCertSign
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	must(err)
	cert, _ := x509.ParseCertificate(der)
	return k, cert, der
}

func leaf(dir, cn string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, server bool) (certPath, keyPath string) {
	k, tmpl := keyAndTemplate(cn)
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.DNSNames = []string{"localhost"}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
	must(err)
	kder, err := x509.MarshalECPrivateKey(k)
	must(err)
	return writePEM(dir, cn+".crt", "CERTIFICATE", der), writePEM(dir, cn+".key", "EC PRIVATE KEY", kder)
}

func writePEM(dir, name, typ string, der []byte) string {
	p := filepath.Join(dir, name)
	must(os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
	return p
}
