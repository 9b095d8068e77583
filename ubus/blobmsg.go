package ubus

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Type is a blobmsg attribute type (enum blobmsg_type in libubox).
type Type uint8

// Blobmsg types. Bool shares the wire type of Int8, as in libubox.
const (
	TypeUnspec Type = 0
	TypeArray  Type = 1
	TypeTable  Type = 2
	TypeString Type = 3
	TypeInt64  Type = 4
	TypeInt32  Type = 5
	TypeInt16  Type = 6
	TypeInt8   Type = 7
	TypeBool   Type = TypeInt8
	TypeDouble Type = 8
	typeLast   Type = TypeDouble
)

var typeNames = [...]string{"unspec", "array", "table", "string", "int64", "int32", "int16", "int8", "double"}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Table is a blobmsg table that keeps its fields in wire order. Decode into
// a *Table (instead of a map) to re-encode a message byte for byte; nested
// tables then decode as Table too. Marshal writes a Table in its order and a
// map in sorted key order.
type Table []Field

// Field is one named value of a Table.
type Field struct {
	Name  string
	Value any
}

// Map returns the table as a map; nested Tables become maps too. When a name
// repeats, the first value wins, as with blobmsg_parse.
func (t Table) Map() map[string]any {
	m := make(map[string]any, len(t))
	for _, f := range t {
		if _, dup := m[f.Name]; !dup {
			m[f.Name] = toMapForm(f.Value)
		}
	}
	return m
}

func toMapForm(v any) any {
	switch v := v.(type) {
	case Table:
		return v.Map()
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = toMapForm(e)
		}
		return out
	}
	return v
}

// Decoded Go types, by blobmsg type:
//
//	unspec  nil (empty) or []byte
//	array   []any
//	table   map[string]any (Table when decoding into a *Table)
//	string  string (without the terminating NUL)
//	int64   int64
//	int32   int32
//	int16   int16
//	int8    bool (any non-zero byte is true, like `ubus call` prints it)
//	double  float64

// blobmsgAttr is a blobmsg attribute split into name and value.
type blobmsgAttr struct {
	typ     Type
	name    string
	data    []byte
	dataOff int
	off     int
}

// splitBlobmsg parses the name header of an extended attribute. Without the
// extended bit the attribute has no name and its payload is the value.
func splitBlobmsg(a blobAttr, needName bool) (blobmsgAttr, error) {
	m := blobmsgAttr{typ: Type(a.id), data: a.data, dataOff: a.off + blobHdrLen, off: a.off}
	if m.typ > typeLast {
		return m, decodeErr(a.off, "unknown blobmsg type %d", a.id)
	}
	if !a.extended {
		if needName {
			return m, decodeErr(a.off, "table member without a name header")
		}
		return m, nil
	}
	if len(a.data) < 2 {
		return m, decodeErr(a.off, "name header truncated")
	}
	nl := int(binary.BigEndian.Uint16(a.data))
	hl := pad4(2 + nl + 1)
	if hl > len(a.data) {
		return m, decodeErr(a.off, "name length %d exceeds attribute payload of %d bytes", nl, len(a.data))
	}
	if a.data[2+nl] != 0 {
		return m, decodeErr(a.off+blobHdrLen+2+nl, "name not NUL-terminated")
	}
	m.name = string(a.data[2 : 2+nl])
	m.data = a.data[hl:]
	m.dataOff = a.off + blobHdrLen + hl
	return m, nil
}

type decoder struct {
	ordered bool // tables as Table rather than map[string]any
}

// list decodes the attributes in buf (at offset base of the input) as the
// members of a table (named) or an array.
func (d *decoder) list(buf []byte, base, depth int, table bool) (any, error) {
	if depth > MaxDepth {
		return nil, decodeErr(base, "nesting deeper than %d", MaxDepth)
	}
	it := blobIter{buf: buf, base: base}
	var (
		arr []any
		tbl Table
		mp  map[string]any
	)
	switch {
	case !table:
		arr = []any{}
	case d.ordered:
		tbl = Table{}
	default:
		mp = map[string]any{}
	}
	for {
		a, ok := it.next()
		if !ok {
			break
		}
		m, err := splitBlobmsg(a, table)
		if err != nil {
			return nil, err
		}
		v, err := d.value(m, depth)
		if err != nil {
			return nil, err
		}
		switch {
		case !table:
			arr = append(arr, v)
		case d.ordered:
			tbl = append(tbl, Field{m.name, v})
		default:
			if _, dup := mp[m.name]; !dup {
				mp[m.name] = v
			}
		}
	}
	if it.err != nil {
		return nil, it.err
	}
	switch {
	case !table:
		return arr, nil
	case d.ordered:
		return tbl, nil
	}
	return mp, nil
}

func (d *decoder) value(m blobmsgAttr, depth int) (any, error) {
	data := m.data
	fixed := func(n int) error {
		if len(data) != n {
			return decodeErr(m.off, "%s %q: payload is %d bytes, want %d", m.typ, m.name, len(data), n)
		}
		return nil
	}
	switch m.typ {
	case TypeUnspec:
		if len(data) == 0 {
			return nil, nil
		}
		return append([]byte(nil), data...), nil
	case TypeArray:
		return d.list(data, m.dataOff, depth+1, false)
	case TypeTable:
		return d.list(data, m.dataOff, depth+1, true)
	case TypeString:
		if len(data) == 0 || data[len(data)-1] != 0 {
			return nil, decodeErr(m.off, "string %q not NUL-terminated", m.name)
		}
		return string(data[:len(data)-1]), nil
	case TypeInt64:
		if err := fixed(8); err != nil {
			return nil, err
		}
		return int64(binary.BigEndian.Uint64(data)), nil
	case TypeInt32:
		if err := fixed(4); err != nil {
			return nil, err
		}
		return int32(binary.BigEndian.Uint32(data)), nil
	case TypeInt16:
		if err := fixed(2); err != nil {
			return nil, err
		}
		return int16(binary.BigEndian.Uint16(data)), nil
	case TypeInt8:
		if err := fixed(1); err != nil {
			return nil, err
		}
		return data[0] != 0, nil
	case TypeDouble:
		if err := fixed(8); err != nil {
			return nil, err
		}
		return math.Float64frombits(binary.BigEndian.Uint64(data)), nil
	}
	return nil, decodeErr(m.off, "unknown blobmsg type %d", m.typ)
}

// decodeTable decodes table content: the named attributes that make up the
// payload of UBUS_ATTR_DATA (or of a table attribute).
func decodeTable(data []byte, ordered bool) (any, error) {
	if len(data) > MaxMessageSize {
		return nil, decodeErr(0, "%d bytes exceed the %d byte message limit", len(data), MaxMessageSize)
	}
	d := decoder{ordered: ordered}
	return d.list(data, 0, 0, true)
}

// Encoding: a blobmsg attribute is a blob_attr with the extended bit set,
// then a name header (be16 name length, name, NUL, zero padding to 4 bytes
// from the start of the payload), then the value.
type encoder struct {
	blobBuf
	depth int
	err   error // first unencodable name
}

func (e *encoder) begin(t Type, name string) int {
	if len(name) > math.MaxUint16 && e.err == nil {
		e.err = fmt.Errorf("ubus: encode: name of %d bytes exceeds %d", len(name), math.MaxUint16)
	}
	off := e.open(uint8(t), true)
	e.b = binary.BigEndian.AppendUint16(e.b, uint16(len(name)))
	e.b = append(e.b, name...)
	e.b = append(e.b, 0)
	e.padTo4()
	return off
}

// end closes an attribute begun at off. Scalars are not padded inside their
// length; containers include their children's padding (blob_nest_end).
func (e *encoder) end(off int) { e.close(off) }

func (e *encoder) scalar(t Type, name string, payload ...byte) {
	off := e.begin(t, name)
	e.b = append(e.b, payload...)
	e.end(off)
}

func (e *encoder) str(name, s string) {
	off := e.begin(TypeString, name)
	e.b = append(e.b, s...)
	e.b = append(e.b, 0)
	e.end(off)
}

func (e *encoder) i8(name string, v uint8) { e.scalar(TypeInt8, name, v) }
func (e *encoder) i16(name string, v uint16) {
	e.scalar(TypeInt16, name, byte(v>>8), byte(v))
}
func (e *encoder) i32(name string, v uint32) {
	e.scalar(TypeInt32, name, binary.BigEndian.AppendUint32(nil, v)...)
}
func (e *encoder) i64(name string, v uint64) {
	e.scalar(TypeInt64, name, binary.BigEndian.AppendUint64(nil, v)...)
}
func (e *encoder) f64(name string, v float64) {
	e.scalar(TypeDouble, name, binary.BigEndian.AppendUint64(nil, math.Float64bits(v))...)
}

// nest opens a table or array attribute; the caller writes members and
// calls unnest with the returned offset.
func (e *encoder) nest(t Type, name string) (int, error) {
	if e.depth >= MaxDepth {
		return 0, fmt.Errorf("ubus: encode %q: nesting deeper than %d", name, MaxDepth)
	}
	e.depth++
	return e.begin(t, name), nil
}

func (e *encoder) unnest(off int) {
	e.depth--
	e.end(off)
}
