package ubus

import (
	"encoding"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// Marshal encodes v as blobmsg table content: the payload of UBUS_ATTR_DATA.
// v is a map with string keys, a struct, a Table, or a pointer to one; nil
// encodes as an empty table.
//
// Go values map to blobmsg types as follows: string → string; bool → int8;
// int8/uint8 → int8; int16/uint16 → int16; int32/uint32 → int32;
// int64/uint64 → int64; int/uint → int32 when the value fits, else int64
// (as blobmsg_add_json does for JSON numbers); float32/float64 → double;
// []byte → unspec with the bytes as payload; nil → unspec, empty (JSON
// null); slices and arrays → array; maps (sorted by key), Table (in order)
// and structs → table.
//
// Struct fields use the key from the `ubus` tag, else the `json` tag, else
// the field name; "-" skips a field, ",omitempty" skips false, 0, "", nil
// and empty slices and maps, ",omitzero" skips zero values (IsZero). Values
// implementing encoding.TextMarshaler (time.Time, net.IP…) encode as strings.
// Embedded structs without a tag are flattened.
func Marshal(v any) ([]byte, error) {
	e := encoder{}
	if err := e.tableContent(reflect.ValueOf(v)); err != nil {
		return nil, err
	}
	if e.err != nil {
		return nil, e.err
	}
	if len(e.b) > MaxMessageSize {
		return nil, fmt.Errorf("ubus: encode: %d bytes exceed the %d byte message limit", len(e.b), MaxMessageSize)
	}
	return e.b, nil
}

// Unmarshal decodes blobmsg table content (the payload of UBUS_ATTR_DATA)
// into v, a non-nil pointer: *any or *map[string]any give the generic form,
// *Table the ordered form, and a pointer to a struct or typed map is filled
// field by field with range-checked conversions between numeric types.
func Unmarshal(data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("ubus: unmarshal: need a non-nil pointer, got %T", v)
	}
	if t, ok := v.(*Table); ok {
		g, err := decodeTable(data, true)
		if err != nil {
			return err
		}
		*t = g.(Table)
		return nil
	}
	g, err := decodeTable(data, false)
	if err != nil {
		return err
	}
	if m, ok := v.(*map[string]any); ok {
		*m = g.(map[string]any)
		return nil
	}
	return assign(rv.Elem(), g, "")
}

// TypeError reports a value whose blobmsg type does not fit the Go type it
// is decoded into, or a Go value that has no blobmsg form.
type TypeError struct {
	Path string // dotted path of the member, "" for the top level
	Want string
	Got  string
}

func (e *TypeError) Error() string {
	p := e.Path
	if p == "" {
		p = "(top)"
	}
	return fmt.Sprintf("ubus: %s: cannot use %s as %s", p, e.Got, e.Want)
}

// UbusStatus maps mistyped arguments to UBUS_STATUS_INVALID_ARGUMENT.
func (e *TypeError) UbusStatus() Status { return StatusInvalidArgument }

func (e *encoder) tableContent(v reflect.Value) error {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if !v.IsValid() {
		return nil
	}
	if v.Type() == tableType {
		for i := range v.Len() {
			f := v.Index(i)
			if err := e.value(f.Field(0).String(), f.Field(1)); err != nil {
				return err
			}
		}
		return nil
	}
	switch v.Kind() {
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return &TypeError{Want: "table", Got: v.Type().String()}
		}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys {
			if err := e.value(k.String(), v.MapIndex(k)); err != nil {
				return err
			}
		}
		return nil
	case reflect.Struct:
		for _, f := range structFields(v.Type()) {
			fv, err := v.FieldByIndexErr(f.index)
			if err != nil { // through a nil embedded pointer
				continue
			}
			if (f.omitEmpty && isEmpty(fv)) || (f.omitZero && isZero(fv)) {
				continue
			}
			if err := e.value(f.name, fv); err != nil {
				return err
			}
		}
		return nil
	}
	return &TypeError{Want: "table", Got: v.Type().String()}
}

var (
	bytesType           = reflect.TypeFor[[]byte]()
	tableType           = reflect.TypeFor[Table]()
	textMarshalerType   = reflect.TypeFor[encoding.TextMarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Interface, reflect.Pointer:
		return v.IsZero()
	}
	return false
}

func isZero(v reflect.Value) bool {
	if !v.CanInterface() {
		return v.IsZero()
	}
	if z, ok := v.Interface().(interface{ IsZero() bool }); ok {
		if v.Kind() == reflect.Pointer && v.IsNil() {
			return true
		}
		return z.IsZero()
	}
	return v.IsZero()
}

func (e *encoder) value(name string, v reflect.Value) error {
	for v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer {
		if v.IsNil() {
			e.scalar(TypeUnspec, name)
			return nil
		}
		v = v.Elem()
	}
	if !v.IsValid() {
		e.scalar(TypeUnspec, name)
		return nil
	}
	if v.Type().Implements(textMarshalerType) && v.CanInterface() {
		text, err := v.Interface().(encoding.TextMarshaler).MarshalText()
		if err != nil {
			return fmt.Errorf("ubus: encode %q: %w", name, err)
		}
		e.str(name, string(text))
		return nil
	}
	if v.Type() == tableType {
		return e.table(name, v)
	}
	switch v.Kind() {
	case reflect.String:
		e.str(name, v.String())
	case reflect.Bool:
		b := uint8(0)
		if v.Bool() {
			b = 1
		}
		e.i8(name, b)
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.sized(name, v.Type().Size(), uint64(v.Int()))
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		e.sized(name, v.Type().Size(), v.Uint())
	case reflect.Int:
		if i := v.Int(); i >= math.MinInt32 && i <= math.MaxInt32 {
			e.i32(name, uint32(i))
		} else {
			e.i64(name, uint64(i))
		}
	case reflect.Uint, reflect.Uintptr:
		if u := v.Uint(); u <= math.MaxInt32 {
			e.i32(name, uint32(u))
		} else {
			e.i64(name, u)
		}
	case reflect.Float32, reflect.Float64:
		e.f64(name, v.Float())
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 && v.Kind() == reflect.Slice {
			e.scalar(TypeUnspec, name, v.Bytes()...)
			return nil
		}
		off, err := e.nest(TypeArray, name)
		if err != nil {
			return err
		}
		for i := range v.Len() {
			if err := e.value("", v.Index(i)); err != nil {
				return err
			}
		}
		e.unnest(off)
	case reflect.Map, reflect.Struct:
		return e.table(name, v)
	default:
		return &TypeError{Path: name, Want: "blobmsg value", Got: v.Type().String()}
	}
	return nil
}

// sized writes the low size bytes of u as the blobmsg integer of that size:
// Go's sized integers map one to one onto INT8, INT16, INT32 and INT64.
func (e *encoder) sized(name string, size uintptr, u uint64) {
	switch size {
	case 1:
		e.i8(name, uint8(u))
	case 2:
		e.i16(name, uint16(u))
	case 4:
		e.i32(name, uint32(u))
	default:
		e.i64(name, u)
	}
}

// table writes v (a Table, map or struct) as a nested table.
func (e *encoder) table(name string, v reflect.Value) error {
	off, err := e.nest(TypeTable, name)
	if err != nil {
		return err
	}
	if err := e.tableContent(v); err != nil {
		return err
	}
	e.unnest(off)
	return nil
}

type fieldInfo struct {
	name      string
	index     []int
	omitEmpty bool
	omitZero  bool
}

var fieldCache sync.Map // reflect.Type → []fieldInfo

func structFields(t reflect.Type) []fieldInfo {
	if f, ok := fieldCache.Load(t); ok {
		return f.([]fieldInfo)
	}
	var out []fieldInfo
	var walk func(t reflect.Type, index []int)
	walk = func(t reflect.Type, index []int) {
		for i := range t.NumField() {
			sf := t.Field(i)
			tag, hasTag := sf.Tag.Lookup("ubus")
			if !hasTag {
				tag, hasTag = sf.Tag.Lookup("json")
			}
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			idx := append(slices.Clone(index), i)
			if sf.Anonymous && name == "" && sf.Type.Kind() == reflect.Struct {
				walk(sf.Type, idx)
				continue
			}
			if !sf.IsExported() {
				continue
			}
			if name == "" {
				name = sf.Name
			}
			o := "," + opts + ","
			out = append(out, fieldInfo{name: name, index: idx,
				omitEmpty: strings.Contains(o, ",omitempty,"), omitZero: strings.Contains(o, ",omitzero,")})
		}
	}
	walk(t, nil)
	fieldCache.Store(t, out)
	return out
}

// assign stores the generic decoded value g into v.
func assign(v reflect.Value, g any, path string) error {
	mismatch := func() error {
		return &TypeError{Path: path, Want: v.Type().String(), Got: genericTypeName(g)}
	}
	if v.Kind() == reflect.Interface && v.NumMethod() == 0 {
		if g == nil {
			v.SetZero()
		} else {
			v.Set(reflect.ValueOf(g))
		}
		return nil
	}
	if v.Kind() == reflect.Pointer {
		if g == nil {
			v.SetZero()
			return nil
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return assign(v.Elem(), g, path)
	}
	if g == nil {
		v.SetZero()
		return nil
	}
	if v.Type() == tableType {
		m, ok := g.(map[string]any)
		if !ok {
			return mismatch()
		}
		v.Set(reflect.ValueOf(tableFromMap(m)))
		return nil
	}
	if v.CanAddr() && v.Addr().Type().Implements(textUnmarshalerType) {
		s, ok := g.(string)
		if !ok {
			return mismatch()
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			return &TypeError{Path: path, Want: v.Type().String(), Got: fmt.Sprintf("string %q (%v)", s, err)}
		}
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		s, ok := g.(string)
		if !ok {
			return mismatch()
		}
		v.SetString(s)
	case reflect.Bool:
		switch x := g.(type) {
		case bool:
			v.SetBool(x)
		case int16, int32, int64:
			i := reflect.ValueOf(x).Int()
			if i != 0 && i != 1 {
				return mismatch()
			}
			v.SetBool(i == 1)
		default:
			return mismatch()
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, ok := genericInt(g)
		if !ok || v.OverflowInt(i) {
			return mismatch()
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		i, ok := genericInt(g)
		if !ok {
			return mismatch()
		}
		// ubus carries unsigned 32-bit values (object ids) in int32.
		if _, is32 := g.(int32); is32 && i < 0 && v.Type().Bits() >= 32 {
			i = int64(uint32(i))
		}
		if i < 0 || v.OverflowUint(uint64(i)) {
			return mismatch()
		}
		v.SetUint(uint64(i))
	case reflect.Float32, reflect.Float64:
		switch x := g.(type) {
		case float64:
			v.SetFloat(x)
		default:
			i, ok := genericInt(g)
			if !ok {
				return mismatch()
			}
			v.SetFloat(float64(i))
		}
	case reflect.Slice:
		if v.Type() == bytesType || v.Type().Elem().Kind() == reflect.Uint8 {
			switch x := g.(type) {
			case []byte:
				v.SetBytes(append([]byte(nil), x...))
				return nil
			case string:
				v.SetBytes([]byte(x))
				return nil
			}
		}
		arr, ok := g.([]any)
		if !ok {
			return mismatch()
		}
		s := reflect.MakeSlice(v.Type(), len(arr), len(arr))
		for i, e := range arr {
			if err := assign(s.Index(i), e, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		v.Set(s)
	case reflect.Array:
		arr, ok := g.([]any)
		if !ok || len(arr) != v.Len() {
			return mismatch()
		}
		for i, e := range arr {
			if err := assign(v.Index(i), e, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		m, ok := g.(map[string]any)
		if !ok || v.Type().Key().Kind() != reflect.String {
			return mismatch()
		}
		if v.IsNil() {
			v.Set(reflect.MakeMapWithSize(v.Type(), len(m)))
		}
		for k, e := range m {
			ev := reflect.New(v.Type().Elem()).Elem()
			if err := assign(ev, e, joinPath(path, k)); err != nil {
				return err
			}
			v.SetMapIndex(reflect.ValueOf(k).Convert(v.Type().Key()), ev)
		}
	case reflect.Struct:
		m, ok := g.(map[string]any)
		if !ok {
			return mismatch()
		}
		for _, f := range structFields(v.Type()) {
			e, ok := m[f.name]
			if !ok { // like encoding/json: fall back to a case-insensitive match
				for k, x := range m {
					if strings.EqualFold(k, f.name) {
						e, ok = x, true
						break
					}
				}
			}
			if !ok {
				continue
			}
			fv, err := v.FieldByIndexErr(f.index)
			if err != nil { // nil embedded pointer: not supported
				return mismatch()
			}
			if err := assign(fv, e, joinPath(path, f.name)); err != nil {
				return err
			}
		}
	default:
		return mismatch()
	}
	return nil
}

// tableFromMap orders a decoded map by key; the wire order is not kept
// when a Table sits inside a struct or map (decode into *Table to keep it).
func tableFromMap(m map[string]any) Table {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	t := make(Table, 0, len(m))
	for _, k := range keys {
		v := m[k]
		if sub, ok := v.(map[string]any); ok {
			v = tableFromMap(sub)
		}
		t = append(t, Field{k, v})
	}
	return t
}

func joinPath(p, k string) string {
	if p == "" {
		return k
	}
	return p + "." + k
}

func genericInt(g any) (int64, bool) {
	switch x := g.(type) {
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

func genericTypeName(g any) string {
	switch g.(type) {
	case nil:
		return "unspec"
	case []byte:
		return "unspec (binary)"
	case []any:
		return "array"
	case map[string]any, Table:
		return "table"
	case string:
		return "string"
	case int64:
		return "int64"
	case int32:
		return "int32"
	case int16:
		return "int16"
	case bool:
		return "int8/bool"
	case float64:
		return "double"
	}
	return fmt.Sprintf("%T", g)
}
