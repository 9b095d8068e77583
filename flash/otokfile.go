package flash

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The .otok file (spec in FORMAT.md):
//
//	offset  size  field
//	0       8     magic  89 4F 54 4F 4B 0D 0A 1A  ("\x89OTOK\r\n\x1a")
//	8       2     format version, big endian (1)
//	10      2     flags, big endian (0; nonzero is rejected)
//	12      4     length N of the signed manifest, big endian (1 … 65536)
//	16      N     signed manifest: COSE_Sign1 of the manifest CBOR
//	16+N    size  the squashfs, exactly manifest.size bytes, then EOF
//
// A reader checks the manifest before it reads a byte of the squashfs.

// OtokMagic starts every .otok file.
var OtokMagic = [8]byte{0x89, 'O', 'T', 'O', 'K', '\r', '\n', 0x1a}

// OtokVersion is the format version this package writes and reads.
const OtokVersion = 1

const otokHeaderLen = 16

// WriteOtokHeader writes the fixed header and the signed manifest.
func WriteOtokHeader(w io.Writer, signed []byte) error {
	if len(signed) == 0 || len(signed) > MaxManifestSize {
		return fmt.Errorf("otok: signed manifest is %d bytes, want 1…%d", len(signed), MaxManifestSize)
	}
	var h [otokHeaderLen]byte
	copy(h[:], OtokMagic[:])
	binary.BigEndian.PutUint16(h[8:], OtokVersion)
	binary.BigEndian.PutUint16(h[10:], 0)
	binary.BigEndian.PutUint32(h[12:], uint32(len(signed)))
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	_, err := w.Write(signed)
	return err
}

// ErrNotOtok means the input does not start with the .otok magic.
var ErrNotOtok = errors.New("not an .otok file (bad magic)")

// ReadOtokHeader reads the header and returns the signed manifest bytes;
// r is left at the first byte of the squashfs.
func ReadOtokHeader(r io.Reader) ([]byte, error) {
	var h [otokHeaderLen]byte
	if n, err := io.ReadFull(r, h[:]); err != nil {
		if n >= len(OtokMagic) && [8]byte(h[:8]) != OtokMagic {
			return nil, ErrNotOtok
		}
		return nil, fmt.Errorf("otok header: truncated after %d bytes", n)
	}
	if [8]byte(h[:8]) != OtokMagic {
		return nil, ErrNotOtok
	}
	if v := binary.BigEndian.Uint16(h[8:]); v != OtokVersion {
		return nil, fmt.Errorf("otok header: format version %d, this otok reads %d", v, OtokVersion)
	}
	if f := binary.BigEndian.Uint16(h[10:]); f != 0 {
		return nil, fmt.Errorf("otok header: unknown flags %#04x", f)
	}
	n := binary.BigEndian.Uint32(h[12:])
	if n == 0 || n > MaxManifestSize {
		return nil, fmt.Errorf("otok header: manifest length %d, want 1…%d", n, MaxManifestSize)
	}
	signed := make([]byte, n)
	if got, err := io.ReadFull(r, signed); err != nil {
		return nil, fmt.Errorf("otok header: manifest truncated at %d of %d bytes", got, n)
	}
	return signed, nil
}

// OtokSize is the total size of a .otok file with this signed manifest and
// squashfs size.
func OtokSize(signedLen int, squashfsSize int64) int64 {
	return otokHeaderLen + int64(signedLen) + squashfsSize
}
