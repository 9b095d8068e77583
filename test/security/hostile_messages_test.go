package security

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/otok/otok/agent"
	"github.com/otok/otok/agent/fleet"
	"github.com/otok/otok/board"
	"github.com/otok/otok/flash"
	"github.com/otok/otok/ubus"
)

// decodeResult runs fn guarded: a panic or a call over the time bound is
// a violation; so is no error when one is required.
func decodeResult(fn func() error) (err error, violation string) {
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				violation = fmt.Sprintf("panic: %v", r)
			}
		}()
		err = fn()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		return nil, "no answer within 10s"
	}
	if d := time.Since(start); d > 2*time.Second && violation == "" {
		violation = fmt.Sprintf("took %v", d)
	}
	return err, violation
}

// cborCases are malformed or hostile CBOR items built around a valid
// message (a map).
func cborCases(valid []byte) map[string][]byte {
	c := map[string][]byte{
		"empty":               {},
		"break-only":          {0xff},
		"reserved-ai":         {0x1c},
		"nan":                 {0xf9, 0x7e, 0x00},
		"deep-array-10000":    append(bytes.Repeat([]byte{0x81}, 10000), 0x00),
		"deep-map-10000":      append(bytes.Repeat([]byte{0xa1, 0x00}, 10000), 0x00),
		"deep-tag-10000":      append(bytes.Repeat([]byte{0xc6}, 10000), 0x00),
		"huge-bstr-len":       {0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"huge-tstr-len":       {0x7b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 'a'},
		"huge-array-len":      {0x9b, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00},
		"huge-map-len":        {0xbb, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},
		"array-1M-elements":   append([]byte{0x9a, 0x00, 0x10, 0x00, 0x00}, make([]byte, 1<<20)...),
		"indef-array":         {0x9f, 0x01, 0x02, 0xff},
		"indef-bstr":          {0x5f, 0x41, 0x00, 0xff},
		"indef-map-unclosed":  {0xbf, 0x61, 'a', 0x01},
		"dup-key-id":          {0xa2, 0x62, 'i', 'd', 0x01, 0x62, 'i', 'd', 0x02},
		"invalid-utf8-key":    {0xa1, 0x62, 0xff, 0xfe, 0x00},
		"truncated":           valid[:len(valid)/2],
		"trailing-byte":       append(append([]byte{}, valid...), 0x00),
		"second-item":         append(append([]byte{}, valid...), valid...),
		"not-a-map":           {0x83, 0x01, 0x02, 0x03},
		"text-instead-of-map": {0x63, 'a', 'b', 'c'},
	}
	var m map[any]cbor.RawMessage
	if cbor.Unmarshal(valid, &m) != nil || len(m) == 0 || len(m) > 22 {
		return c
	}
	keys := make([]any, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
	enc := func(repl map[int][]byte, dup bool, indef bool) []byte {
		var b bytes.Buffer
		n := len(keys)
		if dup {
			n++
		}
		if indef {
			b.WriteByte(0xbf)
		} else {
			b.WriteByte(0xa0 | byte(n))
		}
		for i, k := range keys {
			kb, _ := cbor.Marshal(k)
			b.Write(kb)
			if r, ok := repl[i]; ok {
				b.Write(r)
			} else {
				b.Write(m[k])
			}
			if dup && i == 0 {
				b.Write(kb)
				b.Write(m[k])
			}
		}
		if indef {
			b.WriteByte(0xff)
		}
		return b.Bytes()
	}
	c["dup-first-key"] = enc(nil, true, false)
	c["indef-length-map"] = enc(nil, false, true)
	for i, k := range keys {
		// A value of another major type.
		v := m[k]
		other := []byte{0x61, 'x'}
		if len(v) > 0 && v[0]>>5 == 3 {
			other = []byte{0x18, 0x2a}
		}
		c[fmt.Sprintf("wrong-type-%v", k)] = enc(map[int][]byte{i: other}, false, false)
		c[fmt.Sprintf("huge-value-%v", k)] = enc(map[int][]byte{i: {0x5b, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00}}, false, false)
	}
	return c
}

// TestHostileMessages feeds generated hostile CBOR messages to every
// decoder that reads bytes from outside (fleet commands, desired state,
// status, replies, events, image manifests and their COSE envelopes):
// each must return an error, never panic, never take long.
func TestHostileMessages(t *testing.T) {
	dir := corpusDir(t, "cbor")
	gold := func(p string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "..", p))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	keys := []ed25519.PublicKey{pub}
	targets := []struct {
		name  string
		valid []byte
		fn    func([]byte) error
	}{
		{"fleet command", gold("agent/fleet/testdata/command_run.cbor"), func(b []byte) error { _, err := fleet.DecodeCommand(b); return err }},
		{"fleet signed command", gold("agent/fleet/testdata/command_signed.cbor"), func(b []byte) error {
			p, err := fleet.Open(b, fleet.CtypeCommand, keys)
			if err == nil {
				_, err = fleet.DecodeCommand(p)
			}
			return err
		}},
		{"fleet desired", gold("agent/fleet/testdata/desired.cbor"), func(b []byte) error { _, err := fleet.DecodeDesired(b); return err }},
		{"fleet signed desired", gold("agent/fleet/testdata/desired_signed.cbor"), func(b []byte) error {
			p, err := fleet.Open(b, fleet.CtypeDesired, keys)
			if err == nil {
				_, err = fleet.DecodeDesired(p)
			}
			return err
		}},
		{"fleet status", gold("agent/fleet/testdata/status.cbor"), func(b []byte) error { _, err := fleet.DecodeStatus(b); return err }},
		{"fleet state", gold("agent/fleet/testdata/state_online.cbor"), func(b []byte) error { _, err := fleet.DecodeState(b); return err }},
		{"fleet reply", gold("agent/fleet/testdata/reply_final.cbor"), func(b []byte) error { _, err := fleet.DecodeReply(b); return err }},
		{"fleet event", gold("agent/fleet/testdata/event.cbor"), func(b []byte) error { _, err := fleet.DecodeEvent(b); return err }},
		{"image manifest", gold("flash/testdata/manifest.cbor"), func(b []byte) error { _, err := flash.DecodeManifest(b); return err }},
		{"image COSE_Sign1", gold("flash/testdata/manifest.cose"), func(b []byte) error { _, err := flash.ParseCOSE(b); return err }},
	}
	for _, tg := range targets {
		// The valid message itself must decode (else the mutations prove
		// nothing) — except the signed ones, whose key we do not have.
		if !strings.Contains(tg.name, "signed") {
			if err, v := decodeResult(func() error { return tg.fn(tg.valid) }); err != nil || v != "" {
				t.Fatalf("%s: golden vector does not decode: %v %s", tg.name, err, v)
			}
		}
		cases := cborCases(tg.valid)
		names := make([]string, 0, len(cases))
		for n := range cases {
			names = append(names, n)
		}
		sort.Strings(names)
		bad := 0
		for _, n := range names {
			b := cases[n]
			if tg.name == "fleet reply" && n == "wrong-type-6" {
				continue // key 6 is the op-specific result: any CBOR item (protocol.cddl)
			}
			os.WriteFile(filepath.Join(dir, strings.ReplaceAll(tg.name, " ", "_")+"-"+n+".cbor"), b, 0o644)
			err, v := decodeResult(func() error { return tg.fn(b) })
			rec := hostileRec{Kind: "CBOR messages (decoders)", Case: tg.name + ": " + n, OK: true}
			switch {
			case v != "":
				rec.OK, rec.Detail = false, v
			case err == nil:
				rec.OK, rec.Detail = false, "accepted"
			case strings.TrimSpace(err.Error()) == "":
				rec.OK, rec.Detail = false, "empty error message"
			default:
				rec.Detail = err.Error()
			}
			record(t, "hostile", rec)
			if !rec.OK {
				bad++
				t.Errorf("%s / %s: %s", tg.name, n, rec.Detail)
			}
		}
		t.Logf("%-22s %d hostile messages, %d not rejected", tg.name, len(names), bad)
	}
}

// blobAttr builds a blob_attr: id, extended flag, payload (len includes
// the 4-byte header; padding to 4 bytes is not counted).
func blobAttr(id byte, ext bool, payload []byte) []byte {
	l := uint32(4 + len(payload))
	h := uint32(id&0x7f)<<24 | l
	if ext {
		h |= 1 << 31
	}
	b := binary.BigEndian.AppendUint32(nil, h)
	b = append(b, payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// blobmsgAttr is a named blobmsg attribute.
func blobmsgAttr(typ byte, name string, data []byte) []byte {
	p := binary.BigEndian.AppendUint16(nil, uint16(len(name)))
	p = append(p, name...)
	p = append(p, 0)
	for (len(p)+4)%4 != 0 {
		p = append(p, 0)
	}
	return blobAttr(typ, true, append(p, data...))
}

// TestHostileUbus feeds hostile ubus blobs and messages to the ubus codec
// (what ubusd or a local process can send the agent).
func TestHostileUbus(t *testing.T) {
	dir := corpusDir(t, "ubus")
	const (
		tArray, tTable, tString, tInt32 = 1, 2, 3, 5
	)
	deep := blobmsgAttr(tString, "s", []byte("x\x00"))
	for i := 0; i < 5000; i++ {
		deep = blobmsgAttr(tTable, "", deep)
	}
	deepArr := blobmsgAttr(tInt32, "", []byte{0, 0, 0, 1})
	for i := 0; i < 5000; i++ {
		deepArr = blobmsgAttr(tArray, "", deepArr)
	}
	huge := binary.BigEndian.AppendUint32(nil, 1<<31|uint32(tTable)<<24|0xffffff)
	many := []byte{}
	for i := 0; i < 100000; i++ {
		many = append(many, blobmsgAttr(tInt32, "k", []byte{0, 0, 0, byte(i)})...)
	}
	cases := map[string][]byte{
		"len-below-header":     {0x83, 0x00, 0x00, 0x02},
		"len-beyond-data":      huge,
		"len-3":                {0x00, 0x00, 0x00, 0x03},
		"string-no-nul":        blobmsgAttr(tString, "s", []byte("abc")),
		"int32-short":          blobmsgAttr(tInt32, "i", []byte{0, 1}),
		"unknown-type-99":      blobmsgAttr(99, "u", []byte{1, 2, 3, 4}),
		"name-len-beyond":      blobAttr(tString, true, []byte{0xff, 0xff, 'a', 0}),
		"name-no-nul":          blobAttr(tString, true, []byte{0x00, 0x02, 'a', 'b', 'c', 'd'}),
		"table-10000-deep":     deep,
		"array-10000-deep":     deepArr,
		"table-100000-entries": many,
		"misaligned-nested":    blobmsgAttr(tTable, "t", []byte{0x83, 0x00, 0x00, 0x05, 0x00}),
		"garbage":              bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 1000),
	}
	names := make([]string, 0, len(cases))
	for n := range cases {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		b := cases[n]
		os.WriteFile(filepath.Join(dir, n+".blob"), b, 0o644)
		// As a blobmsg table (the payload of a call), and as a whole
		// message on the wire (8-byte header, then the blob).
		table := blobAttr(0, false, b)
		msg := append([]byte{0, 5, 0, 1, 0, 0, 0, 1}, table...)
		var errs []string
		rec := hostileRec{Kind: "ubus blobs and messages (codec)", Case: n, OK: true}
		for _, f := range []struct {
			what string
			fn   func() error
		}{
			{"blobmsg", func() error { var m map[string]any; return ubus.Unmarshal(b, &m) }},
			{"blob", func() error { _, err := ubus.ParseBlob(table); return err }},
			{"message", func() error { _, _, err := ubus.ReadMessage(bytes.NewReader(msg)); return err }},
		} {
			err, v := decodeResult(f.fn)
			switch {
			case v != "":
				rec.OK = false
				errs = append(errs, f.what+": "+v)
			case err == nil && f.what == "blobmsg" && !strings.Contains(n, "100000"):
				rec.OK = false
				errs = append(errs, f.what+": accepted")
			case err != nil:
				errs = append(errs, f.what+": "+err.Error())
			default:
				errs = append(errs, f.what+": ok")
			}
		}
		rec.Detail = strings.Join(errs, "; ")
		record(t, "hostile", rec)
		if !rec.OK {
			t.Errorf("%s: %s", n, rec.Detail)
		} else {
			t.Logf("%-22s %.200s", n, rec.Detail)
		}
	}
}

// TestHostileUCI feeds hostile /etc/config/otok files to the agent's
// config parser: syntax errors reject the file, bad container sections
// are refused (in Config.Errors, never in Config.Containers).
func TestHostileUCI(t *testing.T) {
	dir := corpusDir(t, "uci")
	sec := func(name, opts string) string {
		return "config container '" + name + "'\n\toption image 'base'\n" + opts
	}
	cases := []struct {
		name, text string
		bad        string // container that must be refused ("" = file must be refused)
		deferred   bool   // documented as checked when the container is created
	}{
		{"unterminated-quote", "config container x\n\toption image 'base\n", "", false},
		{"nul-in-quotes", "config container x\n\toption image 'ba\x00se'\n", "", false},
		{"nul-after-backslash", "config container x\n\toption image ba\\\x00se\n", "", false},
		{"option-before-config", "\toption image base\nconfig container x\n", "", false},
		{"line-2MiB", "config container x\n\toption image '" + strings.Repeat("a", 2<<20) + "'\n", "x", false},
		{"binary-garbage", string(bytes.Repeat([]byte{0xff, 0xfe, 0x00, 0x27, 0x22, 0x5c}, 2000)), "", false},
		{"name-traversal", sec("../../etc", ""), "../../etc", false},
		{"name-shell", sec("a;reboot", ""), "a;reboot", false},
		{"name-too-long", sec(strings.Repeat("n", 300), ""), strings.Repeat("n", 300), false},
		{"memory-negative", sec("m", "\toption memory '-1'\n"), "m", false},
		{"memory-garbage", sec("m", "\toption memory '1e99q'\n"), "m", false},
		{"pids-negative", sec("p", "\toption pids '-5'\n"), "p", false},
		{"net-bad-port", sec("n", "\toption net 'macvlan:../../x'\n"), "n", true},
		{"restart-garbage", sec("r", "\toption restart 'always:x'\n"), "r", false},
		{"mount-relative", sec("v", "\tlist mounts 'relative:/x'\n"), "v", false},
		{"mount-target-relative", sec("v2", "\tlist mounts '/tmp:x/../y'\n"), "v2", false},
		{"env-no-equals", sec("e", "\tlist env 'NOEQUALS'\n"), "e", false},
		{"user-garbage", sec("u", "\toption user '0:0:0:x'\n"), "u", true},
		{"cpus-garbage", sec("cp", "\toption cpus 'lots'\n"), "cp", false},
		{"tmpfs-garbage", sec("tf", "\toption tmpfs '-1G'\n"), "tf", false},
		{"depends-self-loop", sec("dl", "\tlist depends 'dl'\n"), "dl", false},
	}
	for _, c := range cases {
		os.WriteFile(filepath.Join(dir, c.name), []byte(c.text), 0o644)
		var cfg *agent.Config
		err, v := decodeResult(func() error {
			var err error
			cfg, err = agent.ParseConfig(c.name, []byte(c.text))
			return err
		})
		rec := hostileRec{Kind: "UCI files (agent config)", Case: c.name, OK: true}
		switch {
		case v != "":
			rec.OK, rec.Detail = false, v
		case err != nil:
			rec.Detail = err.Error()
		case c.bad == "":
			rec.OK, rec.Detail = false, "file accepted"
		case cfg.Containers[c.bad] != nil && c.deferred:
			rec.Detail = fmt.Sprintf("container %.40q accepted by the parser; ContainerSpec.Validate documents this field as checked when the container is created", c.bad)
		case cfg.Containers[c.bad] != nil:
			rec.OK, rec.Detail = false, fmt.Sprintf("container %.40q accepted", c.bad)
		case cfg.Errors[c.bad] == nil:
			rec.OK, rec.Detail = false, fmt.Sprintf("container %.40q neither accepted nor given an error", c.bad)
		default:
			rec.Detail = cfg.Errors[c.bad].Error()
		}
		if len(rec.Detail) > 300 {
			rec.Detail = rec.Detail[:300] + "…"
		}
		record(t, "hostile", rec)
		if !rec.OK {
			t.Errorf("%s: %s", c.name, rec.Detail)
		} else {
			t.Logf("%-22s %.160s", c.name, rec.Detail)
		}
	}
}

// TestHostileBoardJSON feeds hostile /etc/board.json files to the board
// parser: malformed ones are refused; names that cannot be interfaces
// must not come out as ports.
func TestHostileBoardJSON(t *testing.T) {
	dir := corpusDir(t, "board")
	deep := strings.Repeat(`{"a":`, 100000) + "1" + strings.Repeat("}", 100000)
	var many strings.Builder
	many.WriteString(`{"network":{`)
	for i := 0; i < 100000; i++ {
		if i > 0 {
			many.WriteString(",")
		}
		fmt.Fprintf(&many, `"p%d":{"device":"eth%d"}`, i, i)
	}
	many.WriteString(`}}`)
	net := func(dev string) string {
		return `{"network":{"lan":{"device":` + dev + `,"protocol":"static"}}}`
	}
	cases := []struct {
		name, text string
		strict     bool // must be refused outright
		badDev     string
	}{
		{"not-json", "this is not json", true, ""},
		{"truncated", `{"network":{"lan":{"device":"eth0"`, true, ""},
		{"network-is-string", `{"network":"lan"}`, true, ""},
		{"device-is-number", net(`7`), true, ""},
		{"nesting-100000", deep, true, ""},
		{"device-traversal", net(`"../../etc"`), false, "../../etc"},
		{"device-slash", net(`"eth0/x"`), false, "eth0/x"},
		{"device-too-long", net(`"` + strings.Repeat("e", 64) + `"`), false, strings.Repeat("e", 64)},
		{"device-shell", net(`"eth0;reboot"`), false, "eth0;reboot"},
		{"ports-100000", many.String(), false, ""},
	}
	for _, c := range cases {
		os.WriteFile(filepath.Join(dir, c.name+".json"), []byte(c.text), 0o644)
		var b *board.Board
		err, v := decodeResult(func() error {
			var err error
			b, err = board.ParseBoardJSON([]byte(c.text))
			return err
		})
		rec := hostileRec{Kind: "board.json files (board parser)", Case: c.name, OK: true}
		switch {
		case v != "":
			rec.OK, rec.Detail = false, v
		case err != nil:
			rec.Detail = err.Error()
		case c.strict:
			rec.OK, rec.Detail = false, "accepted"
		case c.badDev != "" && strings.Contains(fmt.Sprintf("%+v", b), c.badDev):
			// Not an interface name any kernel accepts; board.json is a
			// root-owned firmware file and names only reach netlink
			// lookups (which fail), so this is noted, not counted.
			rec.Detail = fmt.Sprintf("device %.40q accepted as a port name (not validated by board; fails later at the netlink lookup)", c.badDev)
		default:
			rec.Detail = "parsed; no unusable device name came out"
		}
		record(t, "hostile", rec)
		if !rec.OK {
			t.Errorf("%s: %s", c.name, rec.Detail)
		} else {
			t.Logf("%-22s %.160s", c.name, rec.Detail)
		}
	}
}
