// Package cose is otok's COSE_Sign1 (RFC 9052 §4.2) with EdDSA/Ed25519
// (RFC 9053 §2.2), written on top of the CBOR codec: the whole of COSE
// otok needs is one structure, one algorithm and three header labels, so a
// general COSE library would cost the router binary for nothing. Image
// manifests (flash) and fleet commands and desired documents (agent/fleet)
// are signed with it; each kind of message has its own content type, so a
// signature made for one kind is never accepted as another.
//
//	COSE_Sign1 = #6.18([ protected: bstr .cbor {1: -8, 3: ctype, 4: kid},
//	                     unprotected: {},
//	                     payload: bstr,
//	                     signature: bstr .size 64 ])
//	Sig_structure = ["Signature1", protected, external_aad: h'', payload]
//
// Keys are PEM PKCS #8 (private) and PKIX (public) Ed25519, so openssl
// reads them (`openssl pkey -in x.key -pubout`); a key id (the COSE kid) is
// the first 8 bytes of sha256 of the raw 32-byte public key.
//
// It knows no otok type and imports no otok package: what a payload means,
// which keys are trusted and what an unsigned message may do is the
// caller's business.
//
//	signed, err := cose.Sign("application/vnd.otok.manifest+cbor", payload, key)
//	…
//	msg, err := cose.Parse(signed, "application/vnd.otok.manifest+cbor")
//	if err == nil {
//		err = msg.Verify(pub) // pub: the trusted key whose KeyID is msg.KeyID
//	}
package cose
