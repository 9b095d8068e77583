package flash

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// COSE_Sign1 (RFC 9052 §4.2) with EdDSA/Ed25519 (RFC 9053 §2.2), written on
// top of the CBOR codec: the whole of COSE otok needs is one structure, one
// algorithm and four header labels, so a general COSE library would cost
// flash for nothing.
//
//	COSE_Sign1 = #6.18([ protected: bstr .cbor {1: -8, 3: ctype, 4: kid},
//	                     unprotected: {},
//	                     payload: bstr,
//	                     signature: bstr .size 64 ])
//	Sig_structure = ["Signature1", protected, external_aad: h'', payload]

const (
	coseTagSign1      = 18
	coseHdrAlg        = 1
	coseHdrCrit       = 2
	coseHdrCtype      = 3
	coseHdrKid        = 4
	coseAlgEdDSA      = -8
	manifestMediaType = "application/vnd.otok.manifest+cbor"
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

// Sign1 is a decoded COSE_Sign1 message (not yet verified).
type Sign1 struct {
	Protected []byte // serialized protected header, as signed
	KeyID     []byte // kid from the protected header
	Payload   []byte
	Signature []byte
}

// SignCOSE wraps payload in a COSE_Sign1 signed with key. Ed25519 is
// deterministic, so the same key and payload give the same bytes.
func SignCOSE(payload []byte, key ed25519.PrivateKey) ([]byte, error) {
	prot, err := encMode.Marshal(coseProtected{Alg: coseAlgEdDSA, Ctype: manifestMediaType, Kid: KeyID(key.Public().(ed25519.PublicKey))})
	if err != nil {
		return nil, err
	}
	tbs, err := sigStructure(prot, payload)
	if err != nil {
		return nil, err
	}
	msg := coseSign1{Protected: prot, Unprotected: map[int64]cbor.RawMessage{}, Payload: payload, Signature: ed25519.Sign(key, tbs)}
	return encMode.Marshal(cbor.Tag{Number: coseTagSign1, Content: msg})
}

func sigStructure(protected, payload []byte) ([]byte, error) {
	return encMode.Marshal([]any{"Signature1", protected, []byte{}, payload})
}

// ParseCOSE decodes a COSE_Sign1 strictly: tag 18, EdDSA, the otok manifest
// content type, a kid, no critical or unknown headers, deterministic
// encoding, no trailing bytes.
func ParseCOSE(b []byte) (*Sign1, error) {
	if len(b) > MaxManifestSize {
		return nil, fmt.Errorf("COSE_Sign1: %d bytes, limit %d", len(b), MaxManifestSize)
	}
	var tag cbor.RawTag
	if err := decMode.Unmarshal(b, &tag); err != nil {
		return nil, fmt.Errorf("COSE_Sign1: %w", err)
	}
	if tag.Number != coseTagSign1 {
		return nil, fmt.Errorf("COSE_Sign1: tag %d, want %d", tag.Number, coseTagSign1)
	}
	var msg coseSign1
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
		case coseHdrAlg, coseHdrCtype, coseHdrKid:
		case coseHdrCrit:
			return nil, errors.New("COSE_Sign1: critical headers are not supported")
		default:
			return nil, fmt.Errorf("COSE_Sign1: unknown protected header %d", label)
		}
	}
	var p coseProtected
	if err := decMode.Unmarshal(msg.Protected, &p); err != nil {
		return nil, fmt.Errorf("COSE_Sign1: protected header: %w", err)
	}
	if p.Alg != coseAlgEdDSA {
		return nil, fmt.Errorf("COSE_Sign1: algorithm %d, want EdDSA (%d)", p.Alg, coseAlgEdDSA)
	}
	if p.Ctype != manifestMediaType {
		return nil, fmt.Errorf("COSE_Sign1: content type %q, want %q", p.Ctype, manifestMediaType)
	}
	if len(p.Kid) != keyIDLen {
		return nil, fmt.Errorf("COSE_Sign1: key id is %d bytes, want %d", len(p.Kid), keyIDLen)
	}
	again, err := encMode.Marshal(cbor.Tag{Number: coseTagSign1, Content: msg})
	if err != nil || !bytes.Equal(again, b) {
		return nil, errors.New("COSE_Sign1: not in deterministic CBOR encoding")
	}
	if prot, err := encMode.Marshal(p); err != nil || !bytes.Equal(prot, msg.Protected) {
		return nil, errors.New("COSE_Sign1: protected header not in deterministic CBOR encoding")
	}
	return &Sign1{Protected: msg.Protected, KeyID: p.Kid, Payload: msg.Payload, Signature: msg.Signature}, nil
}

// Verify checks the signature with pub.
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
