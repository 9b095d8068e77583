package ubus

import (
	"bytes"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// randValue builds a random generic value in the ordered form.
func randValue(r *rand.Rand, depth int) any {
	n := 9
	if depth >= 6 {
		n = 7 // scalars only
	}
	switch r.IntN(n) {
	case 0:
		return randString(r)
	case 1:
		return r.IntN(2) == 1
	case 2:
		return int16(r.Uint32())
	case 3:
		return int32(r.Uint32())
	case 4:
		return int64(r.Uint64())
	case 5:
		return math.Float64frombits(r.Uint64() &^ (0x7ff << 52)) // finite
	case 6:
		if r.IntN(2) == 0 {
			return nil
		}
		return []byte(randString(r) + "\x00\xff")
	case 7:
		a := []any{}
		for range r.IntN(5) {
			a = append(a, randValue(r, depth+1))
		}
		return a
	default:
		return randTable(r, depth+1)
	}
}

func randString(r *rand.Rand) string {
	const chars = "ab\x00é/._-Z"
	var sb strings.Builder
	for range r.IntN(12) {
		sb.WriteByte(chars[r.IntN(len(chars))])
	}
	return sb.String()
}

func randTable(r *rand.Rand, depth int) Table {
	t := Table{}
	for range r.IntN(6) {
		t = append(t, Field{randString(r), randValue(r, depth)})
	}
	return t
}

func TestRoundTripProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		in := randTable(r, 0)
		b, err := Marshal(in)
		if err != nil {
			t.Fatalf("case %d: marshal: %v", i, err)
		}
		var out Table
		if err := Unmarshal(b, &out); err != nil {
			t.Fatalf("case %d: unmarshal: %v", i, err)
		}
		if !reflect.DeepEqual(normEmpty(in), normEmpty(out)) {
			t.Fatalf("case %d:\n in %#v\nout %#v", i, in, out)
		}
		b2, _ := Marshal(out)
		if !bytes.Equal(b, b2) {
			t.Fatalf("case %d: bytes differ", i)
		}
		// The map form agrees with the ordered form.
		var m map[string]any
		if err := Unmarshal(b, &m); err != nil || !reflect.DeepEqual(normEmpty(m), normEmpty(out.Map())) {
			t.Fatalf("case %d: map form differs: %v", i, err)
		}
	}
}

// normEmpty maps empty Tables/slices/maps to one form for comparison
// (Table{} and nil Table both encode as an empty table).
func normEmpty(v any) any {
	switch v := v.(type) {
	case Table:
		if len(v) == 0 {
			return "empty-table"
		}
		out := make(Table, len(v))
		for i, f := range v {
			out[i] = Field{f.Name, normEmpty(f.Value)}
		}
		return out
	case map[string]any:
		if len(v) == 0 {
			return "empty-table"
		}
		out := map[string]any{}
		for k, e := range v {
			out[k] = normEmpty(e)
		}
		return out
	case []any:
		if len(v) == 0 {
			return "empty-array"
		}
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = normEmpty(e)
		}
		return out
	}
	return v
}

func TestMaxSizes(t *testing.T) {
	// A string that fills a message up to the limit: attr header 4, name
	// header 4 ("s"), NUL 1; UBUS_ATTR_DATA header 4, message blob header 4.
	n := MaxMessageSize - 4 - 4 - 4 - 4 - 1
	b, err := Marshal(map[string]any{"s": strings.Repeat("x", n)})
	if err != nil {
		t.Fatalf("largest value: %v", err)
	}
	m := Message{Type: MsgData}
	m.Add(AttrData, b)
	if _, err := m.Marshal(); err != nil {
		t.Fatalf("largest message: %v", err)
	}
	if _, err := Marshal(map[string]any{"s": strings.Repeat("x", MaxMessageSize)}); err == nil {
		t.Fatal("oversized value encoded")
	}
	m.Attrs[0].Data = append(b, 0, 0, 0, 0)
	if _, err := m.Marshal(); err == nil {
		t.Fatal("oversized message encoded")
	}
	// Longest name blobmsg allows (uint16 length).
	long := strings.Repeat("n", math.MaxUint16)
	b, err = Marshal(map[string]any{long: int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := Unmarshal(b, &out); err != nil || out[long] != int32(1) {
		t.Fatalf("long name: %v", err)
	}
	// A name longer than that cannot be encoded.
	if _, err := Marshal(map[string]any{long + "n": 1}); err == nil {
		t.Fatal("name over 65535 bytes encoded")
	}
}
