package cose

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyFiles(t *testing.T) {
	key := seedKey(-1)
	priv, pub, err := EncodeKeyPair(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecPriv, _ := x509.MarshalPKCS8PrivateKey(ec)
	ecPub, _ := x509.MarshalPKIXPublicKey(ec.Public())
	privPath, pubPath := write("k.key", priv), write("k.pub", pub)

	if k, err := LoadPrivateKey(privPath); err != nil || !bytes.Equal(k, key) {
		t.Fatalf("LoadPrivateKey: %v", err)
	}
	if k, err := LoadPublicKey(pubPath); err != nil || !bytes.Equal(k, pubOf(key)) {
		t.Fatalf("LoadPublicKey: %v", err)
	}
	cases := []struct {
		name string
		path string
		pub  bool // LoadPublicKey, else LoadPrivateKey
		want string
	}{
		{"missing private", filepath.Join(dir, "none.key"), false, "key " + filepath.Join(dir, "none.key") + ": open"},
		{"missing public", filepath.Join(dir, "none.pub"), true, "key " + filepath.Join(dir, "none.pub") + ": open"},
		{"public as private", pubPath, false, "key " + pubPath + ": not a PEM PRIVATE KEY"},
		{"private as public", privPath, true, "key " + privPath + ": not a PEM PUBLIC KEY"},
		{"not PEM", write("junk", []byte("ssh-ed25519 AAAA")), true, "not a PEM PUBLIC KEY"},
		{"bad DER", write("bad.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{0x30, 0x00}})), true, "bad.pub: asn1: syntax error"},
		{"ECDSA private", write("ec.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecPriv})), false, "*ecdsa.PrivateKey is not an Ed25519 key"},
		{"ECDSA public", write("ec.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecPub})), true, "*ecdsa.PublicKey is not an Ed25519 key"},
	}
	for _, c := range cases {
		var err error
		if c.pub {
			_, err = LoadPublicKey(c.path)
		} else {
			_, err = LoadPrivateKey(c.path)
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}
}

func TestKeyID(t *testing.T) {
	// sha256 of the raw public key of seed 00 01 … 1f starts 56475aa75463474c (flash/FORMAT.md).
	if got := string(hexOf(KeyID(pubOf(seedKey(-1))))); got != "56475aa75463474c" {
		t.Fatalf("KeyID = %s", got)
	}
}
