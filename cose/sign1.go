package cose

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

const (
	tagSign1  = 18
	hdrAlg    = 1
	hdrCrit   = 2
	hdrCtype  = 3
	hdrKid    = 4
	algEdDSA  = -8
	KeyIDLen  = 8 // bytes of a key id
	firstByte = 0xc0 | tagSign1
)

var (
	// encMode is RFC 8949 §4.2.1 core deterministic encoding: Ed25519 is
	// deterministic too, so a key and a payload give one message.
	encMode = must(cbor.CoreDetEncOptions().EncMode())
	// decMode is strict (no duplicate keys, indefinite lengths, unknown
	// fields or invalid UTF-8) and bounded; Parse also re-encodes what it
	// decoded and compares.
	decMode = must(cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		UTF8:              cbor.UTF8RejectInvalid,
		MaxNestedLevels:   8,
		MaxArrayElements:  1024,
		MaxMapPairs:       256,
	}.DecMode())
)

func must[M any](mode M, err error) M {
	if err != nil {
		panic(err)
	}
	return mode
}

type sign1 struct {
	_           struct{} `cbor:",toarray"`
	Protected   []byte
	Unprotected map[int64]cbor.RawMessage
	Payload     []byte
	Signature   []byte
}

type protected struct {
	Alg   int64  `cbor:"1,keyasint"`
	Ctype string `cbor:"3,keyasint"`
	Kid   []byte `cbor:"4,keyasint"`
}

// KeyID returns the key id of pub: the first 8 bytes of its sha256.
func KeyID(pub ed25519.PublicKey) []byte {
	h := sha256.Sum256(pub)
	return h[:KeyIDLen]
}

// Sign wraps payload in a COSE_Sign1 of content type ctype, signed with
// key. Ed25519 is deterministic, so the same key, type and payload give the
// same bytes.
func Sign(ctype string, payload []byte, key ed25519.PrivateKey) ([]byte, error) {
	prot, err := encMode.Marshal(protected{Alg: algEdDSA, Ctype: ctype, Kid: KeyID(key.Public().(ed25519.PublicKey))})
	if err != nil {
		return nil, err
	}
	tbs, err := sigStructure(prot, payload)
	if err != nil {
		return nil, err
	}
	msg := sign1{Protected: prot, Unprotected: map[int64]cbor.RawMessage{}, Payload: payload, Signature: ed25519.Sign(key, tbs)}
	return encMode.Marshal(cbor.Tag{Number: tagSign1, Content: msg})
}

func sigStructure(protected, payload []byte) ([]byte, error) {
	return encMode.Marshal([]any{"Signature1", protected, []byte{}, payload})
}

// IsSign1 reports whether b starts like a COSE_Sign1: a tag-18 item (0xd2).
func IsSign1(b []byte) bool { return len(b) > 0 && b[0] == firstByte }

// Sign1 is a parsed COSE_Sign1 message, not yet verified.
type Sign1 struct {
	Protected []byte // serialized protected header, as signed
	KeyID     []byte // kid from the protected header, KeyIDLen bytes
	Payload   []byte
	Signature []byte
}

// HeaderError is a well-formed COSE_Sign1 that is not the kind the caller
// asked for: another algorithm, another content type, a key id of the
// wrong length. Callers that answer with error codes tell it apart from
// malformed input ("not authorised" rather than "invalid").
type HeaderError struct{ Reason string }

func (e *HeaderError) Error() string { return "COSE_Sign1: " + e.Reason }

// Parse decodes a COSE_Sign1 strictly: tag 18, EdDSA, content type ctype,
// a kid, exactly the protected labels alg, content type and kid (no crit,
// no unknown labels), an empty unprotected map, an attached payload, a
// 64-byte signature, deterministic encoding of the whole message and of
// its protected header, no trailing bytes. It checks no signature.
func Parse(b []byte, ctype string) (*Sign1, error) {
	var tag cbor.RawTag
	if err := decMode.Unmarshal(b, &tag); err != nil {
		return nil, fmt.Errorf("COSE_Sign1: %w", err)
	}
	if tag.Number != tagSign1 {
		return nil, fmt.Errorf("COSE_Sign1: tag %d, want %d", tag.Number, tagSign1)
	}
	var msg sign1
	if err := decMode.Unmarshal(tag.Content, &msg); err != nil {
		return nil, fmt.Errorf("COSE_Sign1: %w", err)
	}
	if len(msg.Unprotected) != 0 {
		return nil, errors.New("COSE_Sign1: unprotected headers are not accepted")
	}
	if len(msg.Payload) == 0 {
		return nil, errors.New("COSE_Sign1: empty or detached payload")
	}
	if len(msg.Signature) != ed25519.SignatureSize {
		return nil, fmt.Errorf("COSE_Sign1: signature is %d bytes, want %d", len(msg.Signature), ed25519.SignatureSize)
	}
	var hdr map[int64]cbor.RawMessage
	if err := decMode.Unmarshal(msg.Protected, &hdr); err != nil {
		return nil, fmt.Errorf("COSE_Sign1: protected header: %w", err)
	}
	for label := range hdr {
		switch label {
		case hdrAlg, hdrCtype, hdrKid:
		case hdrCrit:
			return nil, errors.New("COSE_Sign1: critical headers are not supported")
		default:
			return nil, fmt.Errorf("COSE_Sign1: unknown protected header %d", label)
		}
	}
	var p protected
	if err := decMode.Unmarshal(msg.Protected, &p); err != nil {
		return nil, fmt.Errorf("COSE_Sign1: protected header: %w", err)
	}
	if p.Alg != algEdDSA {
		return nil, &HeaderError{fmt.Sprintf("algorithm %d, want EdDSA (%d)", p.Alg, algEdDSA)}
	}
	if p.Ctype != ctype {
		return nil, &HeaderError{fmt.Sprintf("content type %q, want %q", p.Ctype, ctype)}
	}
	if len(p.Kid) != KeyIDLen {
		return nil, &HeaderError{fmt.Sprintf("key id is %d bytes, want %d", len(p.Kid), KeyIDLen)}
	}
	again, err := encMode.Marshal(cbor.Tag{Number: tagSign1, Content: msg})
	if err != nil || !bytes.Equal(again, b) {
		return nil, errors.New("COSE_Sign1: not in deterministic CBOR encoding")
	}
	if prot, err := encMode.Marshal(p); err != nil || !bytes.Equal(prot, msg.Protected) {
		return nil, errors.New("COSE_Sign1: protected header not in deterministic CBOR encoding")
	}
	return &Sign1{Protected: msg.Protected, KeyID: p.Kid, Payload: msg.Payload, Signature: msg.Signature}, nil
}

// Verify checks the signature with pub. It does not compare pub's key id
// with s.KeyID: the caller picked pub by it.
func (s *Sign1) Verify(pub ed25519.PublicKey) error {
	tbs, err := sigStructure(s.Protected, s.Payload)
	if err != nil {
		return err
	}
	if !ed25519.Verify(pub, tbs, s.Signature) {
		return errors.New("bad signature")
	}
	return nil
}

// PeekPayload returns the payload of anything shaped like a COSE_Sign1,
// trusting nothing and checking nothing else: for reading a request id out
// of a message that failed verification, so that the failure can be
// answered.
func PeekPayload(b []byte) ([]byte, bool) {
	var tag cbor.RawTag
	var msg sign1
	if cbor.Unmarshal(b, &tag) != nil || cbor.Unmarshal(tag.Content, &msg) != nil {
		return nil, false
	}
	return msg.Payload, true
}
