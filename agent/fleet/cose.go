package fleet

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"

	"github.com/otok/otok/cose"
)

// Commands and desired documents are signed as COSE_Sign1 with
// EdDSA/Ed25519 (package cose: the same structure, keys and key ids as
// flash's image manifests), each message kind with its own content type,
// so a signature made for one kind can never be passed off as another.

const (
	CtypeCommand = "application/vnd.otok.cmd+cbor"
	CtypeDesired = "application/vnd.otok.desired+cbor"
)

// KeyID returns the COSE key id of pub (cose.KeyID).
func KeyID(pub ed25519.PublicKey) []byte { return cose.KeyID(pub) }

// Open returns the payload of a signed or bare message. A COSE_Sign1 must
// have content type ctype and verify with one of keys; a bare message is
// accepted only when keys is empty (no controller keys configured).
// Malformed messages are CodeInvalid; unsigned ones when keys are
// configured, other kinds, untrusted keys and bad signatures are
// CodeUnauthorized.
func Open(b []byte, ctype string, keys []ed25519.PublicKey) ([]byte, error) {
	if !cose.IsSign1(b) {
		if len(keys) > 0 {
			return nil, &Error{Code: CodeUnauthorized, Msg: "unsigned message, and controller keys are configured"}
		}
		return b, nil
	}
	msg, err := cose.Parse(b, ctype)
	if err != nil {
		code := CodeInvalid
		if he := (*cose.HeaderError)(nil); errors.As(err, &he) {
			code = CodeUnauthorized
		}
		return nil, &Error{Code: code, Msg: err.Error()}
	}
	if len(keys) == 0 {
		// Nothing to verify against: take the payload, as a bare message.
		return msg.Payload, nil
	}
	for _, k := range keys {
		if bytes.Equal(cose.KeyID(k), msg.KeyID) {
			if msg.Verify(k) == nil {
				return msg.Payload, nil
			}
			return nil, &Error{Code: CodeUnauthorized, Msg: fmt.Sprintf("bad signature (key %x)", msg.KeyID)}
		}
	}
	return nil, &Error{Code: CodeUnauthorized, Msg: fmt.Sprintf("signed by untrusted key %x", msg.KeyID)}
}

// LoadPublicKey reads a PEM PKIX Ed25519 public key (cose.LoadPublicKey).
func LoadPublicKey(path string) (ed25519.PublicKey, error) { return cose.LoadPublicKey(path) }

// LoadPrivateKey reads a PEM PKCS #8 Ed25519 private key (cose.LoadPrivateKey).
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) { return cose.LoadPrivateKey(path) }

// EncodeKeyPair returns the PEM private and public key files for key
// (cose.EncodeKeyPair).
func EncodeKeyPair(key ed25519.PrivateKey) (priv, pub []byte, err error) {
	return cose.EncodeKeyPair(key)
}

// VerifyCache remembers verified messages by their sha256, for sessions
// that share one process (`fleet sim`): N simulated devices receiving the
// same signed group document verify it once, as N real devices would each
// verify it on their own CPU, in parallel. A device has one session and
// no cache. Only successes are kept; the key set is part of the key.
type VerifyCache struct {
	mu sync.Mutex
	ok map[[32]byte][]byte
}

// NewVerifyCache returns an empty cache.
func NewVerifyCache() *VerifyCache { return &VerifyCache{ok: map[[32]byte][]byte{}} }

func (c *VerifyCache) open(b []byte, ctype string, keys []ed25519.PublicKey) ([]byte, error) {
	if c == nil {
		return Open(b, ctype, keys)
	}
	h := sha256.New()
	h.Write([]byte(ctype))
	for _, k := range keys {
		h.Write(k)
	}
	h.Write(b)
	var sum [32]byte
	h.Sum(sum[:0])
	c.mu.Lock()
	p, hit := c.ok[sum]
	c.mu.Unlock()
	if hit {
		return p, nil
	}
	p, err := Open(b, ctype, keys)
	if err == nil {
		c.mu.Lock()
		if len(c.ok) > 1024 {
			clear(c.ok)
		}
		c.ok[sum] = p
		c.mu.Unlock()
	}
	return p, err
}
