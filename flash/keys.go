package flash

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/otok/otok/cose"
)

// Keys are Ed25519, in the PEM files of package cose: private keys PEM
// "PRIVATE KEY" (PKCS #8), public keys PEM "PUBLIC KEY" (PKIX), so openssl
// reads them too (`openssl pkey -in x.key -pubout`). A key's id is the
// first 8 bytes of sha256 of the raw 32-byte public key; it is the COSE kid.

// KeyID returns the key id of pub (cose.KeyID).
func KeyID(pub ed25519.PublicKey) []byte { return cose.KeyID(pub) }

// GenerateKey writes a new key pair to PATH.key (mode 0600) and PATH.pub
// (0644). It refuses to overwrite either file.
func GenerateKey(path string) (ed25519.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	privPEM, pubPEM, err := cose.EncodeKeyPair(priv)
	if err != nil {
		return nil, err
	}
	keyPath, pubPath := path+".key", path+".pub"
	for _, p := range []string{keyPath, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return nil, fmt.Errorf("key %s: already exists, not overwriting", p)
		}
	}
	if err := writeFileExcl(keyPath, privPEM, 0o600); err != nil {
		return nil, err
	}
	if err := writeFileExcl(pubPath, pubPEM, 0o644); err != nil {
		os.Remove(keyPath)
		return nil, err
	}
	return pub, nil
}

func writeFileExcl(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("key %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("key %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("key %s: %w", path, err)
	}
	return f.Close()
}

// ParsePrivateKey decodes a PEM PKCS #8 Ed25519 private key
// (cose.ParsePrivateKey).
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) { return cose.ParsePrivateKey(b) }

// LoadPrivateKey reads a private key file written by GenerateKey
// (cose.LoadPrivateKey).
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) { return cose.LoadPrivateKey(path) }

// TrustedKey is one key of a keyring.
type TrustedKey struct {
	ID   string // hex key id
	File string // where it came from
	Pub  ed25519.PublicKey
}

// Keyring is the set of keys images may be signed with.
type Keyring struct {
	Dir  string
	Keys map[string]*TrustedKey // by hex key id
}

// LoadKeyring reads every *.pub file in dir. A missing dir is an empty
// keyring (every signed import then fails with "unknown key"); a malformed
// key file is an error, not silently skipped.
func LoadKeyring(dir string) (*Keyring, error) {
	kr := &Keyring{Dir: dir, Keys: map[string]*TrustedKey{}}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return kr, nil
	}
	if err != nil {
		return nil, fmt.Errorf("keys %s: %w", dir, err)
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".pub") || e.IsDir() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", p, err)
		}
		pub, err := cose.ParsePublicKey(b)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", p, err)
		}
		id := hex.EncodeToString(cose.KeyID(pub))
		kr.Keys[id] = &TrustedKey{ID: id, File: p, Pub: pub}
	}
	return kr, nil
}

// IDs lists the key ids, sorted.
func (kr *Keyring) IDs() []string {
	var ids []string
	for id := range kr.Keys {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// VerifyManifest checks a signed manifest (COSE_Sign1) against the keyring
// and returns the manifest and the signing key. Errors name the image when
// the payload decodes far enough to know it.
func (kr *Keyring) VerifyManifest(signed []byte) (*Manifest, *TrustedKey, error) {
	msg, err := ParseCOSE(signed)
	if err != nil {
		return nil, nil, fmt.Errorf("image: %w", err)
	}
	m, err := DecodeManifest(msg.Payload)
	if err != nil {
		return nil, nil, fmt.Errorf("image: %w", err)
	}
	kid := hex.EncodeToString(msg.KeyID)
	var k *TrustedKey
	if kr != nil {
		k = kr.Keys[kid]
	}
	if k == nil {
		dir := ""
		if kr != nil {
			dir = " in " + kr.Dir
		}
		return nil, nil, &VerifyError{Image: m.Name, Reason: fmt.Sprintf("signature by unknown key %s (not trusted%s)", kid, dir)}
	}
	if err := msg.Verify(k.Pub); err != nil {
		return nil, nil, &VerifyError{Image: m.Name, Reason: fmt.Sprintf("bad signature (key %s)", kid)}
	}
	return m, k, nil
}

// VerifyError is a failed verification of an image.
type VerifyError struct {
	Image  string
	Reason string
}

func (e *VerifyError) Error() string { return "image " + e.Image + ": " + e.Reason }

// UnsignedManifest decodes the payload of a COSE_Sign1 without checking the
// signature, for --insecure-skip-verify and for inspecting files.
func UnsignedManifest(signed []byte) (*Manifest, string, error) {
	msg, err := ParseCOSE(signed)
	if err != nil {
		return nil, "", fmt.Errorf("image: %w", err)
	}
	m, err := DecodeManifest(msg.Payload)
	if err != nil {
		return nil, "", fmt.Errorf("image: %w", err)
	}
	return m, hex.EncodeToString(msg.KeyID), nil
}
