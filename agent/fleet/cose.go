package fleet

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"sync"

	"github.com/fxamacker/cbor/v2"
)

// Commands and desired documents are signed as COSE_Sign1 (RFC 9052 §4.2)
// with EdDSA/Ed25519, the same structure and key format as flash's image
// manifests, but each message kind has its own content type, so a signature
// made for one kind can never be passed off as another:
//
//	COSE_Sign1 = #6.18([ protected: bstr .cbor {1: -8, 3: ctype, 4: kid},
//	                     unprotected: {}, payload: bstr, signature: bstr .size 64 ])
//
// Keys are PEM PKCS #8 / PKIX Ed25519 (openssl reads them); a key id is the
// first 8 bytes of sha256 of the raw public key.

const (
	CtypeCommand = "application/vnd.otok.cmd+cbor"
	CtypeDesired = "application/vnd.otok.desired+cbor"

	coseTagSign1 = 18
	coseAlgEdDSA = -8
	keyIDLen     = 8
)

type coseSign1 struct {
	_           struct{} `cbor:",toarray"`
	Protected   []byte
	Unprotected map[int64]cbor.RawMessage
	Payload     []byte
	Signature   []byte
}

type coseProtected struct {
	Alg   int64  `cbor:"1,keyasint"`
	Ctype string `cbor:"3,keyasint"`
	Kid   []byte `cbor:"4,keyasint"`
}

// KeyID returns the COSE key id of pub.
func KeyID(pub ed25519.PublicKey) []byte {
	h := sha256.Sum256(pub)
	return h[:keyIDLen]
}

// Sign wraps payload in a COSE_Sign1 of content type ctype.
func Sign(ctype string, payload []byte, key ed25519.PrivateKey) ([]byte, error) {
	prot, err := encMode.Marshal(coseProtected{Alg: coseAlgEdDSA, Ctype: ctype, Kid: KeyID(key.Public().(ed25519.PublicKey))})
	if err != nil {
		return nil, err
	}
	tbs, err := encMode.Marshal([]any{"Signature1", prot, []byte{}, payload})
	if err != nil {
		return nil, err
	}
	return encMode.Marshal(cbor.Tag{Number: coseTagSign1, Content: coseSign1{
		Protected: prot, Unprotected: map[int64]cbor.RawMessage{}, Payload: payload, Signature: ed25519.Sign(key, tbs),
	}})
}

// isCOSE reports whether b starts like a tag-18 item (0xd2).
func isCOSE(b []byte) bool { return len(b) > 0 && b[0] == 0xc0|coseTagSign1 }

// Open returns the payload of a signed or bare message. A COSE_Sign1 must
// have content type ctype and verify with one of keys; a bare message is
// accepted only when keys is empty (no controller keys configured).
func Open(b []byte, ctype string, keys []ed25519.PublicKey) ([]byte, error) {
	if !isCOSE(b) {
		if len(keys) > 0 {
			return nil, &Error{Code: CodeUnauthorized, Msg: "unsigned message, and controller keys are configured"}
		}
		return b, nil
	}
	var tag cbor.RawTag
	if err := looseMode.Unmarshal(b, &tag); err != nil || tag.Number != coseTagSign1 {
		return nil, &Error{Code: CodeInvalid, Msg: fmt.Sprintf("COSE_Sign1: not a tag-18 item: %v", err)}
	}
	var msg coseSign1
	if err := decMode.Unmarshal(tag.Content, &msg); err != nil {
		return nil, &Error{Code: CodeInvalid, Msg: fmt.Sprintf("COSE_Sign1: %v", err)}
	}
	if len(msg.Unprotected) != 0 || len(msg.Payload) == 0 || len(msg.Signature) != ed25519.SignatureSize {
		return nil, &Error{Code: CodeInvalid, Msg: "COSE_Sign1: unprotected headers, empty payload or bad signature length"}
	}
	var p coseProtected
	if err := decMode.Unmarshal(msg.Protected, &p); err != nil {
		return nil, &Error{Code: CodeInvalid, Msg: fmt.Sprintf("COSE_Sign1: protected header: %v", err)}
	}
	if p.Alg != coseAlgEdDSA || p.Ctype != ctype || len(p.Kid) != keyIDLen {
		return nil, &Error{Code: CodeUnauthorized, Msg: fmt.Sprintf("COSE_Sign1: alg %d ctype %q: want EdDSA %q", p.Alg, p.Ctype, ctype)}
	}
	if len(keys) == 0 {
		// Nothing to verify against: take the payload, as a bare message.
		return msg.Payload, nil
	}
	tbs, err := encMode.Marshal([]any{"Signature1", msg.Protected, []byte{}, msg.Payload})
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if bytes.Equal(KeyID(k), p.Kid) {
			if ed25519.Verify(k, tbs, msg.Signature) {
				return msg.Payload, nil
			}
			return nil, &Error{Code: CodeUnauthorized, Msg: fmt.Sprintf("bad signature (key %x)", p.Kid)}
		}
	}
	return nil, &Error{Code: CodeUnauthorized, Msg: fmt.Sprintf("signed by untrusted key %x", p.Kid)}
}

// LoadPublicKey reads a PEM PKIX Ed25519 public key.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("key %s: not a PEM PUBLIC KEY", path)
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	ek, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("key %s: %T is not Ed25519", path, k)
	}
	return ek, nil
}

// LoadPrivateKey reads a PEM PKCS #8 Ed25519 private key.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("key %s: not a PEM PRIVATE KEY", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key %s: %T is not Ed25519", path, k)
	}
	return ek, nil
}

// EncodeKeyPair returns the PEM private and public key files for key.
func EncodeKeyPair(key ed25519.PrivateKey) (priv, pub []byte, err error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	pder, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pder}), nil
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
