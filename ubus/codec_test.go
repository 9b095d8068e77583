package ubus

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// jsonForm converts a decoded generic value to what encoding/json with
// UseNumber yields for the same data printed by `ubus call`.
func jsonForm(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range v {
			out[k] = jsonForm(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = jsonForm(e)
		}
		return out
	case int16:
		return json.Number(strconv.FormatInt(int64(v), 10))
	case int32:
		return json.Number(strconv.FormatInt(int64(v), 10))
	case int64:
		return json.Number(strconv.FormatInt(v, 10))
	case float64:
		return json.Number(strconv.FormatFloat(v, 'f', 6, 64))
	}
	return v
}

func sameShape(a, b any) bool {
	switch a := a.(type) {
	case map[string]any:
		bm, ok := b.(map[string]any)
		if !ok || len(a) != len(bm) {
			return false
		}
		for k, v := range a {
			if !sameShape(v, bm[k]) {
				return false
			}
		}
		return true
	case []any:
		bs, ok := b.([]any)
		if !ok || len(a) != len(bs) {
			return false
		}
		for i := range a {
			if !sameShape(a[i], bs[i]) {
				return false
			}
		}
		return true
	}
	return reflect.TypeOf(a) == reflect.TypeOf(b)
}

func TestGoldenCaptures(t *testing.T) {
	bins, _ := filepath.Glob("testdata/captures/*.bin")
	if len(bins) != 4 {
		t.Fatalf("want 4 captures, found %d", len(bins))
	}
	for _, bin := range bins {
		t.Run(filepath.Base(bin), func(t *testing.T) {
			raw, err := os.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			attrs, err := ParseBlob(raw)
			if err != nil {
				t.Fatal(err)
			}
			m := Message{Type: MsgData, Attrs: attrs}
			if _, ok := m.U32(AttrObjID); !ok {
				t.Fatal("no UBUS_ATTR_OBJID")
			}
			data, ok := m.Get(AttrData)
			if !ok {
				t.Fatal("no UBUS_ATTR_DATA")
			}
			var got map[string]any
			if err := Unmarshal(data, &got); err != nil {
				t.Fatal(err)
			}
			js, err := os.ReadFile(strings.TrimSuffix(bin, ".bin") + ".json")
			if err != nil {
				t.Fatal(err)
			}
			dec := json.NewDecoder(bytes.NewReader(js))
			dec.UseNumber()
			var want map[string]any
			if err := dec.Decode(&want); err != nil {
				t.Fatal(err)
			}
			g := jsonForm(got).(map[string]any)
			if strings.HasSuffix(bin, "_info.bin") {
				// The system info JSON was captured moments after the
				// binary one: counters moved. Compare the shape (keys
				// and JSON kinds) and the values that do not change.
				if !sameShape(g, want) {
					t.Fatalf("decoded capture has another shape than JSON\n got %v\nwant %v", g, want)
				}
				for _, k := range []string{"root", "swap"} {
					if !reflect.DeepEqual(g[k], want[k]) {
						t.Fatalf("%s: got %v want %v", k, g[k], want[k])
					}
				}
				if g["memory"].(map[string]any)["total"] != want["memory"].(map[string]any)["total"] {
					t.Fatal("memory.total differs")
				}
			} else if !reflect.DeepEqual(g, want) {
				t.Fatalf("decoded capture differs from JSON\n got %v\nwant %v", g, want)
			}

			// Encode back: ordered decode, re-marshal, same bytes.
			var tbl Table
			if err := Unmarshal(data, &tbl); err != nil {
				t.Fatal(err)
			}
			enc, err := Marshal(tbl)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, data) {
				t.Fatalf("re-encoded DATA differs\n got %x\nwant %x", enc, data)
			}
			objid, _ := m.U32(AttrObjID)
			out := Message{Type: MsgData}
			out.PutU32(AttrObjID, objid)
			out.Add(AttrData, enc)
			wire, err := out.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(wire[HeaderSize:], raw) {
				t.Fatalf("re-encoded blob differs\n got %x\nwant %x", wire[HeaderSize:], raw)
			}
		})
	}
}

// TestCorpus: every file of OpenWrt's ubus fuzz corpus yields a value or an
// error, as blobmsg and as a message.
func TestCorpus(t *testing.T) {
	files, _ := filepath.Glob("testdata/corpus/*")
	if len(files) < 19 {
		t.Fatalf("corpus has %d files", len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		errB := Unmarshal(b, &v)
		_, errA := ParseBlob(b)
		_, errM := ParseMessage(b)
		t.Logf("%s: blobmsg=%v blob=%v message=%v", filepath.Base(f), errB, errA, errM)
		if filepath.Base(f) == "valid-blobmsg.bin" {
			if errB != nil {
				t.Fatalf("valid-blobmsg.bin: %v", errB)
			}
			want := map[string]any{
				"message": "Hello, world!",
				// The "double" member lies inside the list's length
				// in this file, so it is the list's fourth element.
				"list": []any{int32(0), int32(1), int32(2), 133.7},
				"testdata": map[string]any{
					"double": 133.7, "hello": int32(1), "world": "2",
				},
			}
			if !reflect.DeepEqual(v, want) {
				t.Fatalf("valid-blobmsg.bin: got %#v", v)
			}
		}
	}
}

func roundTrip(t *testing.T, in any) Table {
	t.Helper()
	b, err := Marshal(in)
	if err != nil {
		t.Fatalf("marshal %v: %v", in, err)
	}
	var tbl Table
	if err := Unmarshal(b, &tbl); err != nil {
		t.Fatalf("unmarshal: %v (%x)", err, b)
	}
	b2, err := Marshal(tbl)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, b2) {
		t.Fatalf("round trip bytes differ\n%x\n%x", b, b2)
	}
	return tbl
}

func TestRoundTripTypes(t *testing.T) {
	in := Table{
		{"s", "hello"},
		{"empty", ""},
		{"nul", "a\x00b"},
		{"t", true}, {"f", false},
		{"i16", int16(-2)}, {"i32", int32(math.MinInt32)}, {"i64", int64(math.MaxInt64)},
		{"d", 1.5}, {"nan", math.Inf(-1)},
		{"null", nil},
		{"bin", []byte{1, 2, 3}},
		{"arr", []any{"x", int32(1), Table{{"in", []any{Table{}, []any{}}}}, []any{true}}},
		{"", "empty name"},
		{strings.Repeat("n", 300), int32(7)},
		{"tbl", Table{{"a", Table{{"b", Table{{"c", int64(-1)}}}}}}},
	}
	got := roundTrip(t, in)
	if !reflect.DeepEqual(got, in) {
		t.Fatalf("got %#v\nwant %#v", got, in)
	}
}

func TestEncodingBytes(t *testing.T) {
	// Hand-checked against libubox: blobmsg_add_string(b, "kernel", "6.6.119").
	b, err := Marshal(Table{{"kernel", "6.6.119"}, {"b", true}, {"n", 5}})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		0x83, 0, 0, 0x18, 0, 6, 'k', 'e', 'r', 'n', 'e', 'l', 0, 0, 0, 0, '6', '.', '6', '.', '1', '1', '9', 0,
		0x87, 0, 0, 0x09, 0, 1, 'b', 0, 1, 0, 0, 0,
		0x85, 0, 0, 0x0c, 0, 1, 'n', 0, 0, 0, 0, 5,
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("got  %x\nwant %x", b, want)
	}
}

func TestGoTypes(t *testing.T) {
	type inner struct {
		X int `ubus:"x"`
	}
	type Embedded struct {
		E string `json:"e"`
	}
	type args struct {
		Embedded
		Name    string            `ubus:"name"`
		Command []string          `json:"command"`
		Count   uint32            `ubus:"count"`
		Big     int64             `ubus:"big"`
		On      bool              `ubus:"on"`
		Ratio   float64           `ubus:"ratio"`
		Env     map[string]string `ubus:"env"`
		In      *inner            `ubus:"in"`
		Skip    string            `ubus:"-"`
		Opt     string            `ubus:"opt,omitempty"`
		hidden  int
	}
	in := args{Embedded{"emb"}, "dns", []string{"/bin/sh", "-c"}, 0xfffffff0, 1 << 40, true, 0.25,
		map[string]string{"A": "1"}, &inner{3}, "skip", "", 9}
	b, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["big"] != int64(1<<40) || m["count"] != int32(-16) || m["e"] != "emb" {
		t.Fatalf("generic form: %#v", m)
	}
	if _, ok := m["Skip"]; ok {
		t.Fatal("skipped field encoded")
	}
	if _, ok := m["opt"]; ok {
		t.Fatal("omitempty field encoded")
	}
	var out args
	if err := Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	in.Skip, in.hidden = "", 0
	if !reflect.DeepEqual(out, in) {
		t.Fatalf("got %+v\nwant %+v", out, in)
	}

	// Mistyped input is a *TypeError that maps to INVALID_ARGUMENT.
	bad, _ := Marshal(map[string]any{"name": 5})
	err = Unmarshal(bad, &out)
	var te *TypeError
	if !errors.As(err, &te) || te.Path != "name" || StatusOf(err) != StatusInvalidArgument {
		t.Fatalf("mistyped: %v", err)
	}
	// Go int: int32 on the wire when it fits, int64 beyond.
	ib, _ := Marshal(map[string]any{"small": 7, "big": uint64(math.MaxUint32) + 1, "neg": -1})
	var im map[string]any
	if err := Unmarshal(ib, &im); err != nil || im["small"] != int32(7) || im["neg"] != int32(-1) || im["big"] != int64(math.MaxUint32+1) {
		t.Fatalf("int widths: %#v %v", im, err)
	}
	// Out of range.
	bad, _ = Marshal(map[string]any{"x": 300})
	var small struct {
		X int8 `ubus:"x"`
	}
	if err := Unmarshal(bad, &small); err == nil {
		t.Fatal("overflow not detected")
	}
}

type hiddenEmbed struct {
	Visible string    `ubus:"visible"`
	When    time.Time `ubus:"when,omitzero"`
	T       Table     `ubus:"t"`
}

func TestUnexportedEmbedded(t *testing.T) {
	type outer struct {
		hiddenEmbed
		N int `ubus:"n"`
	}
	in := outer{hiddenEmbed{"yes", time.Unix(1, 0).UTC(), Table{{"k", "v"}}}, 2}
	b, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := Unmarshal(b, &m); err != nil || m["visible"] != "yes" || m["n"] != int32(2) ||
		!reflect.DeepEqual(m["t"], map[string]any{"k": "v"}) {
		t.Fatalf("%#v %v", m, err)
	}
	var out outer
	if err := Unmarshal(b, &out); err != nil || out.Visible != "yes" || out.N != 2 {
		t.Fatalf("%+v %v", out, err)
	}
}

func TestTextAndOmit(t *testing.T) {
	type rec struct {
		Name    string        `json:"name"`
		Created time.Time     `json:"created,omitzero"`
		Started time.Time     `json:"started,omitzero"`
		IP      net.IP        `json:"ip,omitempty"`
		Tags    []string      `json:"tags,omitempty"`
		Timeout time.Duration `json:"timeout,omitempty"`
	}
	in := rec{Name: "dns", Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), IP: net.ParseIP("192.168.1.2"), Tags: []string{}}
	b, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"name": "dns", "created": "2026-01-02T03:04:05Z", "ip": "192.168.1.2"}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("got %#v", m)
	}
	var out rec
	if err := Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !out.Created.Equal(in.Created) || !out.IP.Equal(in.IP) || out.Name != "dns" {
		t.Fatalf("decoded %+v", out)
	}
	bad, _ := Marshal(map[string]any{"created": "yesterday"})
	if err := Unmarshal(bad, &out); StatusOf(err) != StatusInvalidArgument {
		t.Fatalf("bad time: %v", err)
	}
}

func TestDepthLimit(t *testing.T) {
	var v any = "leaf"
	for range MaxDepth {
		v = []any{v}
	}
	if _, err := Marshal(map[string]any{"a": v}); err != nil {
		t.Fatalf("depth %d: %v", MaxDepth, err)
	}
	if _, err := Marshal(map[string]any{"a": []any{v}}); err == nil {
		t.Fatal("encode: depth limit not enforced")
	}
	// Hand-build a blob nested MaxDepth+1 deep: arrays inside arrays.
	e := encoder{}
	var offs []int
	for range MaxDepth + 1 {
		offs = append(offs, e.begin(TypeArray, ""))
	}
	for i := len(offs) - 1; i >= 0; i-- {
		e.end(offs[i])
	}
	var out any
	err := Unmarshal(e.b, &out)
	var de *DecodeError
	if !errors.As(err, &de) || !strings.Contains(de.Msg, "nesting") {
		t.Fatalf("decode: %v", err)
	}
}

func TestMalformed(t *testing.T) {
	good, _ := Marshal(Table{{"a", "bc"}, {"n", int32(1)}})
	cases := map[string][]byte{
		"truncated header": good[:2],
		"length past end":  good[:len(good)-4],
		"string no NUL":    {0x83, 0, 0, 0x0a, 0, 1, 'a', 0, 'x', 'y', 0, 0},
		"int32 short":      {0x85, 0, 0, 0x0a, 0, 1, 'a', 0, 0, 1, 0, 0},
		"unknown type":     {0x89, 0, 0, 0x08, 0, 1, 'a', 0},
		"name too long":    {0x83, 0, 0, 0x08, 0, 9, 'a', 0},
		"name no NUL":      {0x83, 0, 0, 0x08, 0, 1, 'a', 'b'},
		"len below hdr":    {0x83, 0, 0, 0x02},
		"unnamed member":   {0x03, 0, 0, 0x06, 'a', 0, 0, 0},
		"trailing bytes":   append(append([]byte{}, good...), 0, 0),
	}
	for name, b := range cases {
		var v any
		err := Unmarshal(b, &v)
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Errorf("%s: got %v, want a DecodeError", name, err)
			continue
		}
		t.Logf("%s: %v", name, err)
	}
}

func TestMessageRoundTrip(t *testing.T) {
	data, _ := Marshal(map[string]any{"x": "y"})
	m := Message{Type: MsgInvoke, Seq: 0xfffe, Peer: 0xdeadbeef}
	m.PutU32(AttrObjID, 0x12345678)
	m.PutString(AttrMethod, "status")
	m.PutU8(AttrNoReply, 1)
	m.Add(AttrData, data)
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if b[1] != byte(MsgInvoke) || b[2] != 0xff || b[3] != 0xfe || b[4] != 0xde {
		t.Fatalf("header not big endian: %x", b[:8])
	}
	got, raw, err := ReadMessage(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, b) || got.Type != m.Type || got.Seq != m.Seq || got.Peer != m.Peer {
		t.Fatalf("got %v", got)
	}
	if id, _ := got.U32(AttrObjID); id != 0x12345678 {
		t.Fatal("objid")
	}
	if s, _ := got.Str(AttrMethod); s != "status" {
		t.Fatal("method")
	}
	// Oversized length word: framing error without allocating it.
	huge := append([]byte{0, 2, 0, 1, 0, 0, 0, 0}, 0x00, 0xff, 0xff, 0xff)
	if _, _, err := ReadMessage(bytes.NewReader(huge)); err == nil || !strings.Contains(err.Error(), "framing") {
		t.Fatalf("huge: %v", err)
	}
	// Mistyped known attribute.
	bad := Message{Type: MsgStatus}
	bad.Add(AttrStatus, []byte{1})
	bb, _ := bad.Marshal()
	if _, err := ParseMessage(bb); err == nil {
		t.Fatal("short status accepted")
	}
}

// Every Go integer kind on the wire (libubox: blobmsg_add_u8 … u64): the
// sized kinds as the blobmsg integer of their size, two's complement, big
// endian; int and uint as INT32 when the value fits, INT64 beyond.
func TestEncodeIntegerKinds(t *testing.T) {
	type myInt16 int16
	// attr is the attribute "n" of type typ (BLOBMSG_TYPE_*) with payload
	// p: header (extended bit, type, length), name length, "n\0", padding
	// to 4, payload, padding to 4 (not counted in the length).
	attr := func(typ byte, p ...byte) []byte {
		n := 8 + len(p)
		b := append([]byte{0x80 | typ, 0, 0, byte(n), 0, 1, 'n', 0}, p...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	ff := func(n int) []byte { return bytes.Repeat([]byte{0xff}, n) }
	type intCase struct {
		v    any
		want []byte
	}
	cases := []intCase{
		{int8(-1), attr(7, 0xff)},
		{uint8(200), attr(7, 200)},
		{int16(-2), attr(6, 0xff, 0xfe)},
		{myInt16(0x1234), attr(6, 0x12, 0x34)},
		{uint16(0xbeef), attr(6, 0xbe, 0xef)},
		{int32(math.MinInt32), attr(5, 0x80, 0, 0, 0)},
		{uint32(0xfffffff0), attr(5, 0xff, 0xff, 0xff, 0xf0)},
		{int64(-1), attr(4, ff(8)...)},
		{int64(1), attr(4, 0, 0, 0, 0, 0, 0, 0, 1)},
		{uint64(math.MaxUint64), attr(4, ff(8)...)},
		{int(7), attr(5, 0, 0, 0, 7)},
		{int(-1), attr(5, ff(4)...)},
		{uint(math.MaxInt32), attr(5, 0x7f, 0xff, 0xff, 0xff)},
		{uint(math.MaxInt32) + 1, attr(4, 0, 0, 0, 0, 0x80, 0, 0, 0)},
		{uintptr(1), attr(5, 0, 0, 0, 1)},
	}
	if strconv.IntSize == 64 { // an int beyond int32 (not a constant: 32-bit targets compile this too)
		below := int64(math.MinInt32) - 1
		cases = append(cases, intCase{int(below), attr(4, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff)})
	}
	for _, c := range cases {
		got, err := Marshal(Table{{"n", c.v}})
		if err != nil || !bytes.Equal(got, c.want) {
			t.Errorf("%T(%v): got %x %v, want %x", c.v, c.v, got, err, c.want)
		}
	}
}
