package agent

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
)

func frame(b []byte) []byte {
	out := binary.BigEndian.AppendUint32(nil, uint32(len(b)))
	return append(out, b...)
}

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	body, _ := encMode.Marshal(StopRequest{Name: "dns", Timeout: 5})
	if err := writeFrame(&buf, wireRequest{ID: 7, Op: OpStop, Body: body}); err != nil {
		t.Fatal(err)
	}
	b, err := readFrame(&buf)
	if err != nil {
		t.Fatal(err)
	}
	r, err := decodeRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	var s StopRequest
	if err := decodeBody(r.Op, r.Body, &s); err != nil || r.ID != 7 || s.Name != "dns" || s.Timeout != 5 {
		t.Fatalf("%+v %+v %v", r, s, err)
	}
}

func TestFrameBad(t *testing.T) {
	huge := binary.BigEndian.AppendUint32(nil, MaxFrame+1)
	if _, err := readFrame(bytes.NewReader(huge)); err != errFrameTooLarge {
		t.Errorf("oversized: %v", err)
	}
	if _, err := readFrame(bytes.NewReader([]byte{0, 0, 0, 10, 1, 2})); err == nil {
		t.Error("truncated accepted")
	}
	if _, err := readFrame(bytes.NewReader([]byte{0, 0})); err != io.ErrUnexpectedEOF {
		t.Errorf("short header: %v", err)
	}
	for name, in := range map[string][]byte{
		"garbage":       []byte("hello world"),
		"not a map":     {0x01},
		"no op":         {0xa1, 0x62, 'i', 'd', 0x01},
		"unknown field": {0xa2, 0x62, 'o', 'p', 0x61, 'x', 0x63, 'f', 'o', 'o', 0x01},
		"dup key":       {0xa2, 0x62, 'o', 'p', 0x61, 'x', 0x62, 'o', 'p', 0x61, 'y'},
		"indefinite":    {0xbf, 0x62, 'o', 'p', 0x61, 'x', 0xff},
		"bad utf8":      {0xa1, 0x62, 'o', 'p', 0x61, 0xff},
	} {
		_, err := decodeRequest(in)
		if err == nil || CodeOf(err) != CodeInvalid {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzFrame: the socket decoder never panics and never allocates beyond
// the frame bound, whatever the peer sends.
func FuzzFrame(f *testing.F) {
	body, _ := encMode.Marshal(RunRequest{Spec: ContainerSpec{Name: "a", Image: "b", Command: []string{"x"}}})
	good, _ := encMode.Marshal(wireRequest{ID: 1, Op: OpRun, Body: body})
	f.Add(frame(good))
	f.Add(frame([]byte{0xa1, 0x62, 'o', 'p', 0x61, 'x'}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add(frame([]byte{0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for {
			b, err := readFrame(r)
			if err != nil {
				return
			}
			if len(b) > MaxFrame {
				t.Fatal("frame over bound")
			}
			req, err := decodeRequest(b)
			if err != nil {
				continue
			}
			if o := Ops[req.Op]; o != nil {
				_ = decodeBody(req.Op, req.Body, o.New())
			}
		}
	})
}
