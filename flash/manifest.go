package flash

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"

	"github.com/fxamacker/cbor/v2"
)

// MaxManifestSize bounds an encoded manifest (and the COSE_Sign1 around it).
const MaxManifestSize = 64 << 10

// Image kinds.
const (
	KindSquashfs = "squashfs" // a squashfs file, loop-mounted read-only
	KindDir      = "dir"      // a directory tree unpacked from a rootfs tarball
)

// Manifest describes one image. It is encoded as deterministic CBOR (RFC
// 8949 §4.2.1, core deterministic encoding) with the text keys given in the
// struct tags; see FORMAT.md for the CDDL.
type Manifest struct {
	Name    string            `cbor:"name"`
	Version string            `cbor:"version"`
	Arch    string            `cbor:"arch"`    // GOARCH of the binaries inside (mipsle, mips, arm, arm64, amd64) or "all"
	Kind    string            `cbor:"kind"`    // KindSquashfs or KindDir
	Digest  []byte            `cbor:"sha256"`  // sha256 of the squashfs (or of the tarball as received, for KindDir)
	Size    int64             `cbor:"size"`    // bytes of the squashfs (or tarball)
	Created int64             `cbor:"created"` // Unix seconds
	Process Process           `cbor:"process"`
	Ports   []string          `cbor:"ports,omitempty"` // "53/udp", "80/tcp"
	Labels  map[string]string `cbor:"labels,omitempty"`
}

// Process is an image's default process.
type Process struct {
	Args []string `cbor:"args,omitempty" json:"args,omitempty"`
	Env  []string `cbor:"env,omitempty" json:"env,omitempty"` // KEY=VALUE
	Cwd  string   `cbor:"cwd,omitempty" json:"cwd,omitempty"`
	User string   `cbor:"user,omitempty" json:"user,omitempty"` // uid[:gid] or name
}

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	encMode, err = cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	decMode, err = cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		MaxNestedLevels:   8,
		MaxArrayElements:  4096,
		MaxMapPairs:       4096,
		UTF8:              cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// Character classes of names, versions and arches. Hand-written rather
// than regexp: regexp costs ~150 kB in the router binary.
const (
	lowerDigits = "abcdefghijklmnopqrstuvwxyz0123456789"
	alnum       = lowerDigits + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
)

// token reports whether s is 1..max bytes, starts with a byte of first and
// continues with bytes of first or rest.
func token(s string, max int, first, rest string) bool {
	if len(s) == 0 || len(s) > max || strings.IndexByte(first, s[0]) < 0 {
		return false
	}
	for i := 1; i < len(s); i++ {
		if strings.IndexByte(first, s[i]) < 0 && strings.IndexByte(rest, s[i]) < 0 {
			return false
		}
	}
	return true
}

// ValidName reports whether s is a valid image name: [a-z0-9][a-z0-9._-]*,
// at most 64 bytes.
func ValidName(s string) bool { return token(s, 64, lowerDigits, "._-") }

// ValidVersion reports whether s is a valid image version:
// [A-Za-z0-9][A-Za-z0-9._+-]*, at most 64 bytes.
func ValidVersion(s string) bool { return token(s, 64, alnum, "._+-") }

func validArch(s string) bool { return token(s, 16, lowerDigits, "") }

// Validate checks a manifest's fields.
func (m *Manifest) Validate() error {
	switch {
	case !ValidName(m.Name):
		return fmt.Errorf("manifest: invalid name %q (want [a-z0-9][a-z0-9._-]*, at most 64)", m.Name)
	case !ValidVersion(m.Version):
		return fmt.Errorf("manifest %s: invalid version %q", m.Name, m.Version)
	case !validArch(m.Arch):
		return fmt.Errorf("manifest %s: invalid arch %q", m.Name, m.Arch)
	case m.Kind != KindSquashfs && m.Kind != KindDir:
		return fmt.Errorf("manifest %s: unknown kind %q", m.Name, m.Kind)
	case len(m.Digest) != 32:
		return fmt.Errorf("manifest %s: sha256 digest is %d bytes, want 32", m.Name, len(m.Digest))
	case m.Size <= 0:
		return fmt.Errorf("manifest %s: size %d must be positive", m.Name, m.Size)
	case m.Created < 0:
		return fmt.Errorf("manifest %s: negative creation time", m.Name)
	}
	for _, e := range m.Process.Env {
		if !strings.Contains(e, "=") || strings.HasPrefix(e, "=") {
			return fmt.Errorf("manifest %s: env entry %q is not KEY=VALUE", m.Name, e)
		}
	}
	if m.Process.Cwd != "" && !strings.HasPrefix(m.Process.Cwd, "/") {
		return fmt.Errorf("manifest %s: cwd %q is not absolute", m.Name, m.Process.Cwd)
	}
	for _, s := range [][]string{m.Process.Args, m.Process.Env, m.Ports} {
		for _, v := range s {
			if strings.IndexByte(v, 0) >= 0 {
				return fmt.Errorf("manifest %s: NUL byte in %q", m.Name, v)
			}
		}
	}
	return nil
}

// DigestHex is the manifest's digest in lower-case hex.
func (m *Manifest) DigestHex() string { return hex.EncodeToString(m.Digest) }

// Ref is NAME:VERSION.
func (m *Manifest) Ref() string { return m.Name + ":" + m.Version }

// Marshal encodes the manifest deterministically. Ports are sorted so that
// the same image always encodes to the same bytes.
func (m *Manifest) Marshal() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	c := *m
	if len(c.Ports) > 0 {
		c.Ports = append([]string(nil), c.Ports...)
		sort.Strings(c.Ports)
	}
	return encMode.Marshal(&c)
}

// DecodeManifest decodes and validates a manifest. It accepts only the
// deterministic encoding of known fields: the bytes must re-encode to
// themselves, so one manifest has exactly one valid encoding.
func DecodeManifest(b []byte) (*Manifest, error) {
	if len(b) > MaxManifestSize {
		return nil, fmt.Errorf("manifest: %d bytes, limit %d", len(b), MaxManifestSize)
	}
	var m Manifest
	if err := decMode.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest: decode: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	again, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(again, b) {
		return nil, errors.New("manifest " + m.Name + ": not in deterministic CBOR encoding")
	}
	return &m, nil
}

// HostArch is the architecture images must be built for to run here.
func HostArch() string { return runtime.GOARCH }

// ArchCompatible reports whether an image built for imageArch runs on a
// device whose otok binary is built for deviceArch.
func ArchCompatible(imageArch, deviceArch string) bool {
	return imageArch == "all" || imageArch == deviceArch
}

// CompareVersions orders versions naturally: digit runs compare as numbers,
// everything else byte-wise, so 1.10 > 1.9 and 2.0-rc1 < 2.0-rc2.
func CompareVersions(a, b string) int {
	for a != "" && b != "" {
		da, db := isDigit(a[0]), isDigit(b[0])
		if da && db {
			ia, ib := digitRun(a), digitRun(b)
			na, nb := strings.TrimLeft(a[:ia], "0"), strings.TrimLeft(b[:ib], "0")
			if len(na) != len(nb) {
				return cmpInt(len(na), len(nb))
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			a, b = a[ia:], b[ib:]
			continue
		}
		if a[0] != b[0] {
			return cmpInt(int(a[0]), int(b[0]))
		}
		a, b = a[1:], b[1:]
	}
	return cmpInt(len(a), len(b))
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func digitRun(s string) int {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
