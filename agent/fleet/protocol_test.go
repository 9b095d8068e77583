package fleet

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/otok/otok/cose"
)

var update = flag.Bool("update", false, "rewrite golden vectors in testdata/")

// testKey is a fixed controller key so signed vectors are stable (Ed25519
// signatures are deterministic).
var testKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))

func dig(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func sampleStatus() Status {
	return Status{
		Device: "94833c1a2b3c", BdSeq: 1764340000123, Time: 1764340000456,
		Board: Board{Model: "GL.iNet GL-MT6000", Arch: "aarch64_cortex-a53", Release: "24.10.0", Kernel: "6.6.73"},
		Agent: AgentInfo{Version: "v0.3.0", Uptime: 86400},
		Images: []Image{
			{Name: "adguard", Version: "0.107.55", Digest: dig(1), Size: 14 << 20},
			{Name: "busybox", Version: "1.36.1", Digest: dig(2), Size: 1 << 20},
		},
		Containers: []Container{
			{Name: "dns", Image: "adguard", State: "running", Health: "healthy", Restarts: 1, Addrs: []string{"192.168.1.53/24"}, Usage: &Usage{CPUms: 123456, Mem: 38 << 20, Pids: 12, RxB: 1 << 30, TxB: 1 << 29}, Started: 1764300000000},
			{Name: "httpd", Image: "busybox", State: "running", Addrs: []string{"192.168.1.80/24"}, Usage: &Usage{CPUms: 5400, Mem: 1 << 20, Pids: 2}, Started: 1764300000100},
			{Name: "ntp", Image: "busybox", State: "exited", Exit: &Exit{Code: 1, Reason: "exit status 1"}, Restarts: 5},
			{Name: "mon", Image: "busybox", State: "restarting", Exit: &Exit{Code: 137, Signal: 9, OOM: true, Reason: "OOM killed"}, Restarts: 3},
			{Name: "vpn", Image: "busybox", State: "stopped", Exit: &Exit{Code: 0, Signal: 15}},
		},
		Flash:     &Flash{Free: 41 << 20, Reserve: 4 << 20, Store: 15 << 20},
		Reached:   map[string]Reached{"dev/94833c1a2b3c": {Version: 3}, "group/lab": {Version: 7, Errors: []ItemError{{Item: "container/vpn", Code: CodeUnavailable, Msg: "image wg not available"}}}},
		Groups:    []string{"lab"},
		Dropped:   2,
		Heartbeat: 300,
	}
}

func sampleCommand() Command {
	return Command{ID: "5f2a9c01d3e4b7a6", To: "94833c1a2b3c", Issued: 1764340000000, Deadline: 1764340030000, Op: "restart", Args: Args{Name: "dns", Timeout: 10}}
}

func sampleDesired() Desired {
	return Desired{
		Scope: "group/lab", Version: 7, Issued: 1764340000000,
		Images: []ImageRef{{Name: "adguard", Digest: dig(1), URL: "https://images.example.net/adguard-0.107.55-aarch64.otok", Version: "0.107.55", Size: 14 << 20,
			Signature: append([]byte{0xd2, 0x84, 0x43, 0xa1, 0x01, 0x27, 0xa0}, bytes.Repeat([]byte{0x40}, 2)...)}},
		Containers: []ContainerSpec{{Name: "dns", Image: "adguard", Argv: []string{"/opt/adguardhome/AdGuardHome", "--no-check-update"},
			Net: "macvlan:lan4", IP: "192.168.1.53/24", Restart: "always", Memory: 64 << 20, Publish: []string{"53/udp"}}},
	}
}

// golden returns every message kind with its vector name.
func golden(t *testing.T) map[string]any {
	t.Helper()
	cmd := sampleCommand()
	cb, _ := Marshal(cmd)
	signedCmd, err := cose.Sign(CtypeCommand, cb, testKey)
	if err != nil {
		t.Fatal(err)
	}
	des := sampleDesired()
	db, _ := Marshal(des)
	signedDes, err := cose.Sign(CtypeDesired, db, testKey)
	if err != nil {
		t.Fatal(err)
	}
	runCmd := Command{ID: "r1", To: "94833c1a2b3c", Issued: 1764340000000, Deadline: 1764340060000, Op: "run",
		Args: Args{Spec: &ContainerSpec{Name: "web", Image: "busybox", Argv: []string{"httpd", "-f", "-p", "80"}, Net: "bridge"}}}
	importCmd := Command{ID: "i1", To: "94833c1a2b3c", Issued: 1764340000000, Deadline: 1764340600000, Op: "import",
		Args: Args{Name: "adguard", URL: "https://images.example.net/adguard.otok", Digest: dig(1)}}
	res, _ := Marshal([]byte("dns: started\n"))
	return map[string]any{
		"state_online":   State{Online: true, BdSeq: 1764340000123, Time: 1764340000456},
		"state_will":     State{Online: false, BdSeq: 1764340000123},
		"status":         sampleStatus(),
		"event":          Event{Seq: 42, Time: 1764340000789, Kind: "exit", Container: "ntp", Code: 1, Msg: "exit status 1", BdSeq: 1764340000123},
		"command":        cmd,
		"command_run":    runCmd,
		"command_import": importCmd,
		"command_signed": cbor.RawMessage(signedCmd),
		"reply_progress": Reply{ID: "i1", Progress: 45},
		"reply_final":    Reply{ID: "5f2a9c01d3e4b7a6", Final: true, Result: res},
		"reply_error":    Reply{ID: "5f2a9c01d3e4b7a6", Final: true, Code: CodeNotFound, Msg: "container dns: not found"},
		"desired":        des,
		"desired_signed": cbor.RawMessage(signedDes),
		"desired_empty":  Desired{Scope: "dev/94833c1a2b3c", Version: 4, Issued: 1764340000000},
	}
}

// TestGolden checks that every message encodes to its vector byte for byte
// and that the vector decodes back to the same value.
func TestGolden(t *testing.T) {
	for name, v := range golden(t) {
		b, err := Marshal(v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		path := filepath.Join("testdata", name+".cbor")
		if *update {
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%s: %v (run go test -run TestGolden -update)", name, err)
		}
		if !bytes.Equal(b, want) {
			t.Errorf("%s: encoding differs from %s:\n got %x\nwant %x", name, path, b, want)
		}
		// Decode with the strict decoder of its kind.
		var got any
		switch name[:strings.IndexByte(name+"_", '_')] {
		case "state":
			got, err = DecodeState(want)
		case "status":
			got, err = DecodeStatus(want)
		case "event":
			got, err = DecodeEvent(want)
		case "reply":
			got, err = DecodeReply(want)
		case "command":
			var p []byte
			var keys []ed25519.PublicKey
			if strings.HasSuffix(name, "_signed") {
				keys = []ed25519.PublicKey{testKey.Public().(ed25519.PublicKey)}
			}
			if p, err = Open(want, CtypeCommand, keys); err == nil {
				got, err = DecodeCommand(p)
			}
			if strings.HasSuffix(name, "_signed") {
				v = sampleCommand()
			}
		case "desired":
			var p []byte
			if p, err = Open(want, CtypeDesired, nil); err == nil {
				got, err = DecodeDesired(p)
			}
			if strings.HasSuffix(name, "_signed") {
				v = sampleDesired()
			}
		}
		if err != nil {
			t.Errorf("%s: decode: %v", name, err)
			continue
		}
		if !reflect.DeepEqual(reflect.ValueOf(got).Elem().Interface(), v) {
			t.Errorf("%s: round trip:\n got %+v\nwant %+v", name, reflect.ValueOf(got).Elem().Interface(), v)
		}
	}
}

// TestStatusSize: the status document in CBOR with integer keys against the
// same data in JSON (encoding/json with the Go field names; digests as
// base64, which favours JSON). Target ≤ 0.55.
func TestStatusSize(t *testing.T) {
	st := sampleStatus()
	c, _ := Marshal(st)
	j, _ := json.Marshal(st)
	ratio := float64(len(c)) / float64(len(j))
	t.Logf("status: CBOR %d bytes, JSON %d bytes, ratio %.2f", len(c), len(j), ratio)
	if ratio > 0.55 {
		t.Errorf("CBOR/JSON = %.2f, want ≤ 0.55", ratio)
	}
}

// TestBadInput: every malformed payload is rejected with a clear error.
func TestBadInput(t *testing.T) {
	enc := func(v any) []byte { b, _ := Marshal(v); return b }
	cmd := sampleCommand()
	mut := func(f func(m map[int]any)) []byte {
		var m map[int]any
		if err := cbor.Unmarshal(enc(cmd), &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		return enc(m)
	}
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "empty payload"},
		{"not cbor", []byte("{\"op\":\"run\"}"), "command:"},
		{"truncated", enc(cmd)[:20], "unexpected EOF"},
		{"trailing", append(enc(cmd), 0), "extraneous data"},
		{"array", enc([]any{1, 2}), "cannot unmarshal array"},
		{"wrong type id", mut(func(m map[int]any) { m[1] = 5 }), "cannot unmarshal positive integer"},
		{"wrong type deadline", mut(func(m map[int]any) { m[4] = "soon" }), "cannot unmarshal UTF-8 text string"},
		{"unknown field", mut(func(m map[int]any) { m[99] = true }), "unknown field"},
		{"unknown op", mut(func(m map[int]any) { m[5] = "format-flash" }), "unknown op"},
		{"bad id", mut(func(m map[int]any) { m[1] = "a/b#" }), "command: id"},
		{"deadline before issue", mut(func(m map[int]any) { m[4] = uint64(1) }), "not after issued"},
		{"missing name", mut(func(m map[int]any) { m[6] = map[int]any{} }), "needs a name"},
		{"oversized", append(enc(cmd), make([]byte, MaxCommandSize)...), "limit"},
		{"duplicate key", []byte{0xa2, 0x01, 0x61, 0x61, 0x01, 0x61, 0x62}, "duplicate map key"},
		{"indefinite", []byte{0xbf, 0x01, 0x61, 0x61, 0xff}, "indefinite-length"},
		{"tag", []byte{0xc1, 0x01}, "tag"},
		{"deep", bytes.Repeat([]byte{0x81}, 20), "exceeded max nested level"},
	}
	for _, c := range cases {
		_, err := DecodeCommand(c.b)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
		if c.name == "wrong type id" || c.name == "unknown field" {
			continue
		}
	}
	// The request id is still read from a command that fails, so the error
	// can be answered.
	if id := peekID(mut(func(m map[int]any) { m[99] = 1 })); id != cmd.ID {
		t.Errorf("peekID = %q", id)
	}
	bad := []struct {
		name string
		d    Desired
		want string
	}{
		{"scope", Desired{Scope: "devs/x", Version: 1}, "bad scope"},
		{"version 0", Desired{Scope: "dev/x", Version: 0}, "version must be > 0"},
		{"digest", Desired{Scope: "dev/x", Version: 1, Images: []ImageRef{{Name: "a", Digest: []byte{1}, URL: "u"}}}, "digest is 1 bytes"},
		{"dup container", Desired{Scope: "dev/x", Version: 1, Containers: []ContainerSpec{{Name: "a", Image: "i"}, {Name: "a", Image: "i"}}}, "listed twice"},
		{"container name", Desired{Scope: "dev/x", Version: 1, Containers: []ContainerSpec{{Name: "../a", Image: "i"}}}, "bad name"},
	}
	for _, c := range bad {
		_, err := DecodeDesired(enc(c.d))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("desired %s: got %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := DecodeStatus(enc(Status{Device: "x", Images: []Image{{Name: "a", Digest: []byte{1}}}})); err == nil {
		t.Error("status with a short digest accepted")
	}
}

func TestSignatures(t *testing.T) {
	pub := testKey.Public().(ed25519.PublicKey)
	otherPub, otherKey, _ := ed25519.GenerateKey(nil)
	cb, _ := Marshal(sampleCommand())
	signed, _ := cose.Sign(CtypeCommand, cb, testKey)
	keys := []ed25519.PublicKey{pub}
	if p, err := Open(signed, CtypeCommand, keys); err != nil || !bytes.Equal(p, cb) {
		t.Fatalf("good signature: %v", err)
	}
	check := func(name string, b []byte, ctype string, keys []ed25519.PublicKey, want Code) {
		t.Helper()
		_, err := Open(b, ctype, keys)
		if CodeOf(err) != want {
			t.Errorf("%s: got %v, want code %q", name, err, want)
		}
	}
	check("unsigned with keys", cb, CtypeCommand, keys, CodeUnauthorized)
	check("unsigned without keys", cb, CtypeCommand, nil, CodeOK)
	check("desired signature used as command", mustSign(t, CtypeDesired, cb, testKey), CtypeCommand, keys, CodeUnauthorized)
	check("untrusted key", mustSign(t, CtypeCommand, cb, otherKey), CtypeCommand, keys, CodeUnauthorized)
	check("other trusted key", mustSign(t, CtypeCommand, cb, otherKey), CtypeCommand, []ed25519.PublicKey{pub, otherPub}, CodeOK)
	tampered := bytes.Clone(signed)
	i := bytes.Index(tampered, []byte("restart"))
	tampered[i] = 'R'
	check("tampered payload", tampered, CtypeCommand, keys, CodeUnauthorized)
	flipped := bytes.Clone(signed)
	flipped[len(flipped)-1] ^= 1
	check("flipped signature bit", flipped, CtypeCommand, keys, CodeUnauthorized)
	check("garbage after tag", []byte{0xd2, 0x01}, CtypeCommand, keys, CodeInvalid)
	// The signature's length written in two bytes (0x59 0x00 0x40, not
	// 0x58 0x40): valid CBOR, but not the one deterministic encoding.
	longLen := append(append(bytes.Clone(signed[:len(signed)-66]), 0x59, 0x00, 0x40), signed[len(signed)-64:]...)
	check("non-deterministic envelope", longLen, CtypeCommand, keys, CodeInvalid)
	check("non-deterministic envelope, no keys", longLen, CtypeCommand, nil, CodeInvalid)
}

func mustSign(t *testing.T, ctype string, b []byte, k ed25519.PrivateKey) []byte {
	s, err := cose.Sign(ctype, b, k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
