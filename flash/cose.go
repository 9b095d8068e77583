package flash

import (
	"crypto/ed25519"
	"fmt"

	"github.com/otok/otok/cose"
)

// A manifest is signed as a COSE_Sign1 with Ed25519 (package cose) of its
// own content type, so no other otok signature (a fleet command, a desired
// document) can pass for a manifest's. FORMAT.md has the layout.
const manifestMediaType = "application/vnd.otok.manifest+cbor"

// SignCOSE wraps a manifest payload in a COSE_Sign1 signed with key. Ed25519
// is deterministic, so the same key and payload give the same bytes.
func SignCOSE(payload []byte, key ed25519.PrivateKey) ([]byte, error) {
	return cose.Sign(manifestMediaType, payload, key)
}

// ParseCOSE decodes a signed manifest strictly (cose.Parse: tag 18, EdDSA,
// the manifest content type, a kid, no critical or unknown headers,
// deterministic encoding, no trailing bytes) of at most MaxManifestSize
// bytes. It checks no signature: see Keyring.VerifyManifest.
func ParseCOSE(b []byte) (*cose.Sign1, error) {
	if len(b) > MaxManifestSize {
		return nil, fmt.Errorf("COSE_Sign1: %d bytes, limit %d", len(b), MaxManifestSize)
	}
	return cose.Parse(b, manifestMediaType)
}
