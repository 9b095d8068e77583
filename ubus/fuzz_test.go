package ubus

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// seeds: OpenWrt's ubus fuzz corpus, the real captures (as blobs and as
// blobmsg payloads) and a few built messages.
func seeds(f *testing.F) {
	files, _ := filepath.Glob("testdata/corpus/*")
	caps, _ := filepath.Glob("testdata/captures/*.bin")
	for _, name := range append(files, caps...) {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		if attrs, err := ParseBlob(b); err == nil {
			m := Message{Type: MsgData, Seq: 1, Peer: 2, Attrs: attrs}
			if d, ok := m.Get(AttrData); ok {
				f.Add(d)
			}
			if w, err := m.Marshal(); err == nil {
				f.Add(w)
			}
		}
	}
}

func FuzzBlobmsg(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var tbl Table
		if err := Unmarshal(b, &tbl); err != nil {
			return
		}
		var m map[string]any
		if err := Unmarshal(b, &m); err != nil {
			t.Fatalf("ordered decode ok, map decode failed: %v", err)
		}
		enc, err := Marshal(tbl)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		var tbl2 Table
		if err := Unmarshal(enc, &tbl2); err != nil {
			t.Fatalf("decode of re-encoded: %v", err)
		}
		enc2, err := Marshal(tbl2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("not stable:\n%x\n%x", enc, enc2)
		}
		if len(enc) > 2*len(b)+8 {
			// Canonical form adds name headers to unnamed array members (4 bytes
			// each, at most doubling) but must not blow up.
			t.Fatalf("re-encoded %d bytes from %d", len(enc), len(b))
		}
	})
}

func FuzzMessage(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		// As a blob without header (how OpenWrt's fuzzer feeds ubus_parse_msg).
		_, _ = ParseBlob(b)
		// As a stream.
		r := bytes.NewReader(b)
		for {
			m, _, err := ReadMessage(r)
			if m == nil && err != nil {
				break
			}
		}
		m, err := ParseMessage(b)
		if err != nil {
			return
		}
		w, err := m.Marshal()
		if err != nil {
			t.Fatalf("re-marshal: %v", err)
		}
		m2, err := ParseMessage(w)
		if err != nil {
			t.Fatalf("parse re-marshalled: %v", err)
		}
		if m.Type != m2.Type || m.Seq != m2.Seq || m.Peer != m2.Peer || len(m.Attrs) != len(m2.Attrs) {
			t.Fatalf("header/attrs changed: %v vs %v", m, m2)
		}
		for i := range m.Attrs {
			if !reflect.DeepEqual(m.Attrs[i], m2.Attrs[i]) && !(len(m.Attrs[i].Data) == 0 && len(m2.Attrs[i].Data) == 0) {
				t.Fatalf("attr %d changed", i)
			}
		}
	})
}
