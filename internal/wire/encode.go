package wire

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
	"unicode/utf8"
)

// Format codes of the AMQP 1.0 type system (part 1.6).
const (
	TypeDescribed  byte = 0x00
	TypeNull       byte = 0x40
	TypeTrue       byte = 0x41
	TypeFalse      byte = 0x42
	TypeBoolean    byte = 0x56
	TypeUbyte      byte = 0x50
	TypeUshort     byte = 0x60
	TypeUint       byte = 0x70
	TypeSmallUint  byte = 0x52
	TypeUint0      byte = 0x43
	TypeUlong      byte = 0x80
	TypeSmallUlong byte = 0x53
	TypeUlong0     byte = 0x44
	TypeByte       byte = 0x51
	TypeShort      byte = 0x61
	TypeInt        byte = 0x71
	TypeSmallInt   byte = 0x54
	TypeLong       byte = 0x81
	TypeSmallLong  byte = 0x55
	TypeFloat      byte = 0x72
	TypeDouble     byte = 0x82
	TypeDecimal32  byte = 0x74
	TypeDecimal64  byte = 0x84
	TypeDecimal128 byte = 0x94
	TypeChar       byte = 0x73
	TypeTimestamp  byte = 0x83
	TypeUUID       byte = 0x98
	TypeVbin8      byte = 0xa0
	TypeVbin32     byte = 0xb0
	TypeStr8       byte = 0xa1
	TypeStr32      byte = 0xb1
	TypeSym8       byte = 0xa3
	TypeSym32      byte = 0xb3
	TypeList0      byte = 0x45
	TypeList8      byte = 0xc0
	TypeList32     byte = 0xd0
	TypeMap8       byte = 0xc1
	TypeMap32      byte = 0xd1
	TypeArray8     byte = 0xe0
	TypeArray32    byte = 0xf0
)

// AppendNull appends the null constructor.
func AppendNull(b []byte) []byte { return append(b, TypeNull) }

// AppendBool appends a boolean in its one-byte form (true / false constructors).
func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, TypeTrue)
	}
	return append(b, TypeFalse)
}

// AppendUbyte appends a ubyte.
func AppendUbyte(b []byte, v uint8) []byte { return append(b, TypeUbyte, v) }

// AppendUshort appends a ushort.
func AppendUshort(b []byte, v uint16) []byte {
	return binary.BigEndian.AppendUint16(append(b, TypeUshort), v)
}

// AppendUint appends a uint in the smallest encoding (uint0, smalluint or uint).
func AppendUint(b []byte, v uint32) []byte {
	switch {
	case v == 0:
		return append(b, TypeUint0)
	case v < 256:
		return append(b, TypeSmallUint, byte(v))
	}
	return binary.BigEndian.AppendUint32(append(b, TypeUint), v)
}

// AppendUlong appends a ulong in the smallest encoding (ulong0, smallulong or ulong).
func AppendUlong(b []byte, v uint64) []byte {
	switch {
	case v == 0:
		return append(b, TypeUlong0)
	case v < 256:
		return append(b, TypeSmallUlong, byte(v))
	}
	return binary.BigEndian.AppendUint64(append(b, TypeUlong), v)
}

// AppendByte appends a byte (signed 8-bit integer).
func AppendByte(b []byte, v int8) []byte { return append(b, TypeByte, byte(v)) }

// AppendShort appends a short.
func AppendShort(b []byte, v int16) []byte {
	return binary.BigEndian.AppendUint16(append(b, TypeShort), uint16(v))
}

// AppendInt appends an int in the smallest encoding (smallint or int).
func AppendInt(b []byte, v int32) []byte {
	if v >= -128 && v <= 127 {
		return append(b, TypeSmallInt, byte(int8(v)))
	}
	return binary.BigEndian.AppendUint32(append(b, TypeInt), uint32(v))
}

// AppendLong appends a long in the smallest encoding (smalllong or long).
func AppendLong(b []byte, v int64) []byte {
	if v >= -128 && v <= 127 {
		return append(b, TypeSmallLong, byte(int8(v)))
	}
	return binary.BigEndian.AppendUint64(append(b, TypeLong), uint64(v))
}

// AppendFloat appends an IEEE 754 binary32.
func AppendFloat(b []byte, v float32) []byte {
	return binary.BigEndian.AppendUint32(append(b, TypeFloat), math.Float32bits(v))
}

// AppendDouble appends an IEEE 754 binary64.
func AppendDouble(b []byte, v float64) []byte {
	return binary.BigEndian.AppendUint64(append(b, TypeDouble), math.Float64bits(v))
}

// AppendChar appends a char.
func AppendChar(b []byte, v Char) []byte {
	return binary.BigEndian.AppendUint32(append(b, TypeChar), uint32(v))
}

// AppendTimestamp appends a timestamp (milliseconds since the Unix epoch).
func AppendTimestamp(b []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint64(append(b, TypeTimestamp), uint64(t.UnixMilli()))
}

// AppendUUID appends a uuid.
func AppendUUID(b []byte, u UUID) []byte { return append(append(b, TypeUUID), u[:]...) }

// AppendBinary appends binary data as vbin8 or vbin32.
func AppendBinary(b []byte, v []byte) []byte {
	if len(v) < 256 {
		b = append(b, TypeVbin8, byte(len(v)))
	} else {
		b = binary.BigEndian.AppendUint32(append(b, TypeVbin32), uint32(len(v)))
	}
	return append(b, v...)
}

// AppendString appends a UTF-8 string as str8 or str32. The caller is responsible for
// the string being valid UTF-8 (AppendAny checks).
func AppendString(b []byte, v string) []byte {
	if len(v) < 256 {
		b = append(b, TypeStr8, byte(len(v)))
	} else {
		b = binary.BigEndian.AppendUint32(append(b, TypeStr32), uint32(len(v)))
	}
	return append(b, v...)
}

// appendUTF8 is AppendString for the string fields of composite types: it refuses a
// string that is not valid UTF-8, which no decoder (this one included) would accept.
func appendUTF8(b []byte, s string) ([]byte, error) {
	if !utf8.ValidString(s) {
		return b, fmt.Errorf("amqp encode: string %q is not valid UTF-8", s)
	}
	return AppendString(b, s), nil
}

// validChar reports whether c is a Unicode scalar value, as the decoder requires.
func validChar(c Char) bool { return utf8.ValidRune(rune(c)) }

// AppendSymbol appends a symbol as sym8 or sym32.
func AppendSymbol(b []byte, v Symbol) []byte {
	if len(v) < 256 {
		b = append(b, TypeSym8, byte(len(v)))
	} else {
		b = binary.BigEndian.AppendUint32(append(b, TypeSym32), uint32(len(v)))
	}
	return append(b, v...)
}

// AppendDescriptor appends the described-type constructor 0x00 followed by a numeric
// descriptor as a ulong.
func AppendDescriptor(b []byte, code uint64) []byte {
	return AppendUlong(append(b, TypeDescribed), code)
}

// ListStart appends a list32 constructor with placeholder size and count and returns
// the offset to pass to ListEnd once the elements are appended.
func ListStart(b []byte) ([]byte, int) {
	off := len(b)
	return append(b, TypeList32, 0, 0, 0, 0, 0, 0, 0, 0), off
}

// ListEnd patches the list started at off with its size and element count, shrinking it
// to list8 (or list0 when empty) when it fits, so the encoding is the smallest.
func ListEnd(b []byte, off int, count int) []byte {
	body := len(b) - off - 9
	if count == 0 {
		b[off] = TypeList0
		return b[:off+1]
	}
	if body+1 < 256 && count < 256 {
		b[off] = TypeList8
		b[off+1] = byte(body + 1)
		b[off+2] = byte(count)
		n := copy(b[off+3:], b[off+9:])
		return b[:off+3+n]
	}
	binary.BigEndian.PutUint32(b[off+1:], uint32(body+4))
	binary.BigEndian.PutUint32(b[off+5:], uint32(count))
	return b
}

// mapStart and mapEnd are ListStart/ListEnd for maps; count is the number of keys and
// values together (twice the number of pairs).
func mapStart(b []byte) ([]byte, int) {
	off := len(b)
	return append(b, TypeMap32, 0, 0, 0, 0, 0, 0, 0, 0), off
}

func mapEnd(b []byte, off int, count int) []byte {
	body := len(b) - off - 9
	// array8 only where the decoder takes it: at most one element per byte of size,
	// which an array of nulls (zero-width elements) may need array32's size for.
	if body+1 < 256 && count <= body+1 {
		b[off] = TypeMap8
		b[off+1] = byte(body + 1)
		b[off+2] = byte(count)
		n := copy(b[off+3:], b[off+9:])
		return b[:off+3+n]
	}
	binary.BigEndian.PutUint32(b[off+1:], uint32(body+4))
	binary.BigEndian.PutUint32(b[off+5:], uint32(count))
	return b
}

// AppendSymbolArray appends symbols as an array of sym8 (or sym32 when one is longer
// than 255 bytes). A nil slice is appended as null.
func AppendSymbolArray(b []byte, v []Symbol) []byte {
	if v == nil {
		return AppendNull(b)
	}
	wide := false
	for _, s := range v {
		if len(s) > 255 {
			wide = true
		}
	}
	off := len(b)
	b = append(b, TypeArray32, 0, 0, 0, 0, 0, 0, 0, 0)
	if wide {
		b = append(b, TypeSym32)
		for _, s := range v {
			b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
			b = append(b, s...)
		}
	} else {
		b = append(b, TypeSym8)
		for _, s := range v {
			b = append(b, byte(len(s)))
			b = append(b, s...)
		}
	}
	return arrayEnd(b, off, len(v))
}

func arrayEnd(b []byte, off int, count int) []byte {
	body := len(b) - off - 9
	// array8 only where the decoder takes it: at most one element per byte of size,
	// which an array of nulls (zero-width elements) may need array32's size for.
	if body+1 < 256 && count <= body+1 {
		b[off] = TypeArray8
		b[off+1] = byte(body + 1)
		b[off+2] = byte(count)
		n := copy(b[off+3:], b[off+9:])
		return b[:off+3+n]
	}
	binary.BigEndian.PutUint32(b[off+1:], uint32(body+4))
	binary.BigEndian.PutUint32(b[off+5:], uint32(count))
	return b
}

// Marshaler is implemented by the composite types of this package: they append their
// own described encoding.
type Marshaler interface {
	AppendTo(b []byte) ([]byte, error)
}

// AppendAny appends v in the encoding of its Go type (see the package doc for the
// mapping). Composite types of this package are appended with their descriptor. Integers
// of Go's int and uint types are appended as long and ulong. It reports an error for a Go
// type with no AMQP equivalent and for strings that are not valid UTF-8.
func AppendAny(b []byte, v any) ([]byte, error) {
	return appendAny(b, v, 0)
}

func appendAny(b []byte, v any, depth int) ([]byte, error) {
	// depth counts the lists, maps, arrays and described values around v. The decoder
	// refuses a compound inside MaxDepth others, so the encoder does too.
	if depth >= MaxDepth {
		switch v.(type) {
		case []any, *Map, Fields, Annotations, map[string]any, *Array, *Described, []Symbol, Marshaler:
			return b, fmt.Errorf("amqp encode: values nested deeper than %d", MaxDepth)
		}
	}
	switch v := v.(type) {
	case nil:
		return AppendNull(b), nil
	case bool:
		return AppendBool(b, v), nil
	case uint8:
		return AppendUbyte(b, v), nil
	case uint16:
		return AppendUshort(b, v), nil
	case uint32:
		return AppendUint(b, v), nil
	case uint64:
		return AppendUlong(b, v), nil
	case uint:
		return AppendUlong(b, uint64(v)), nil
	case int8:
		return AppendByte(b, v), nil
	case int16:
		return AppendShort(b, v), nil
	case int32:
		return AppendInt(b, v), nil
	case int64:
		return AppendLong(b, v), nil
	case int:
		return AppendLong(b, int64(v)), nil
	case float32:
		return AppendFloat(b, v), nil
	case float64:
		return AppendDouble(b, v), nil
	case Decimal32:
		return append(append(b, TypeDecimal32), v[:]...), nil
	case Decimal64:
		return append(append(b, TypeDecimal64), v[:]...), nil
	case Decimal128:
		return append(append(b, TypeDecimal128), v[:]...), nil
	case Char:
		if !validChar(v) {
			return b, fmt.Errorf("amqp encode: char 0x%x is not a Unicode scalar value", uint32(v))
		}
		return AppendChar(b, v), nil
	case time.Time:
		return AppendTimestamp(b, v), nil
	case UUID:
		return AppendUUID(b, v), nil
	case []byte:
		if v == nil {
			return AppendNull(b), nil
		}
		return AppendBinary(b, v), nil
	case string:
		if !utf8.ValidString(v) {
			return b, fmt.Errorf("amqp encode: string is not valid UTF-8")
		}
		return AppendString(b, v), nil
	case Symbol:
		return AppendSymbol(b, v), nil
	case []Symbol:
		return AppendSymbolArray(b, v), nil
	case []any:
		if v == nil {
			return AppendNull(b), nil
		}
		b, off := ListStart(b)
		var err error
		for _, e := range v {
			if b, err = appendAny(b, e, depth+1); err != nil {
				return b, err
			}
		}
		return ListEnd(b, off, len(v)), nil
	case *Map:
		if v == nil {
			return AppendNull(b), nil
		}
		b, off := mapStart(b)
		var err error
		for _, e := range v.Entries {
			if b, err = appendAny(b, e.Key, depth+1); err != nil {
				return b, err
			}
			if b, err = appendAny(b, e.Value, depth+1); err != nil {
				return b, err
			}
		}
		return mapEnd(b, off, 2*len(v.Entries)), nil
	case Fields:
		if v == nil {
			return AppendNull(b), nil
		}
		return appendFields(b, v, depth)
	case Annotations:
		if v == nil {
			return AppendNull(b), nil
		}
		return appendAnnotations(b, v, depth)
	case map[string]any:
		if v == nil {
			return AppendNull(b), nil
		}
		b, off := mapStart(b)
		var err error
		var arr [smallMap]string // sorted keys without a heap allocation for small maps
		keys := arr[:0]
		for k := range v {
			keys = append(keys, k)
		}
		sortStrings(keys)
		for _, k := range keys {
			if !utf8.ValidString(k) {
				return b, fmt.Errorf("amqp encode: map key is not valid UTF-8")
			}
			b = AppendString(b, k)
			if b, err = appendAny(b, v[k], depth+1); err != nil {
				return b, err
			}
		}
		return mapEnd(b, off, 2*len(v)), nil
	case *Array:
		if v == nil {
			return AppendNull(b), nil
		}
		return appendArray(b, v, depth)
	case *Described:
		if v == nil {
			return AppendNull(b), nil
		}
		b = append(b, TypeDescribed)
		var err error
		if b, err = appendAny(b, v.Descriptor, depth+1); err != nil {
			return b, err
		}
		return appendAny(b, v.Value, depth+1)
	case Marshaler:
		return v.AppendTo(b)
	}
	return b, fmt.Errorf("amqp encode: unsupported Go type %T", v)
}

func appendFields(b []byte, f Fields, depth int) ([]byte, error) {
	b, off := mapStart(b)
	var arr [smallMap]string
	keys := arr[:0]
	for k := range f {
		keys = append(keys, string(k))
	}
	sortStrings(keys)
	var err error
	for _, k := range keys {
		b = AppendSymbol(b, Symbol(k))
		if b, err = appendAny(b, f[Symbol(k)], depth+1); err != nil {
			return b, err
		}
	}
	return mapEnd(b, off, 2*len(f)), nil
}

func appendAnnotations(b []byte, a Annotations, depth int) ([]byte, error) {
	b, off := mapStart(b)
	// Deterministic order: numeric keys first, ascending, then symbols sorted.
	var numArr [smallMap]uint64
	var symArr [smallMap]string
	nums, syms := numArr[:0], symArr[:0]
	for k := range a {
		switch k := k.(type) {
		case uint64:
			nums = append(nums, k)
		case Symbol:
			syms = append(syms, string(k))
		default:
			return b, fmt.Errorf("amqp encode: annotation key of type %T (want Symbol or uint64)", k)
		}
	}
	sortUint64s(nums)
	sortStrings(syms)
	var err error
	for _, k := range nums {
		b = AppendUlong(b, k)
		if b, err = appendAny(b, a[k], depth+1); err != nil {
			return b, err
		}
	}
	for _, k := range syms {
		b = AppendSymbol(b, Symbol(k))
		if b, err = appendAny(b, a[Symbol(k)], depth+1); err != nil {
			return b, err
		}
	}
	return mapEnd(b, off, 2*len(a)), nil
}

// smallMap is the number of keys that the map encoders sort in a stack buffer.
const smallMap = 8

// appendArray writes an array whose element constructor is derived from a.Code's type
// family, widened where an element needs it.
func appendArray(b []byte, a *Array, depth int) ([]byte, error) {
	off := len(b)
	b = append(b, TypeArray32, 0, 0, 0, 0, 0, 0, 0, 0)
	if a.Descriptor != nil {
		b = append(b, TypeDescribed)
		var err error
		if b, err = appendAny(b, a.Descriptor, depth+1); err != nil {
			return b, err
		}
	}
	code := arrayElementCode(a)
	b = append(b, code)
	for i, v := range a.Values {
		var err error
		if b, err = appendElement(b, code, v, depth+1); err != nil {
			return b, fmt.Errorf("amqp encode: array element %d: %w", i, err)
		}
	}
	return arrayEnd(b, off, len(a.Values)), nil
}

// arrayElementCode picks the one constructor that can carry every element: the fixed
// forms without compact variants, since array elements share one constructor.
func arrayElementCode(a *Array) byte {
	switch a.Code {
	case TypeTrue, TypeFalse, TypeBoolean:
		return TypeBoolean
	case TypeUint0, TypeSmallUint, TypeUint:
		return TypeUint
	case TypeUlong0, TypeSmallUlong, TypeUlong:
		return TypeUlong
	case TypeSmallInt, TypeInt:
		return TypeInt
	case TypeSmallLong, TypeLong:
		return TypeLong
	case TypeVbin8, TypeVbin32:
		return widest(a.Values, TypeVbin8, TypeVbin32)
	case TypeStr8, TypeStr32:
		return widest(a.Values, TypeStr8, TypeStr32)
	case TypeSym8, TypeSym32:
		return widest(a.Values, TypeSym8, TypeSym32)
	case TypeList0, TypeList8, TypeList32:
		return TypeList32
	case TypeMap8, TypeMap32:
		return TypeMap32
	case TypeArray8, TypeArray32:
		return TypeArray32
	}
	return a.Code
}

func widest(values []any, narrow, wide byte) byte {
	for _, v := range values {
		n := 0
		switch v := v.(type) {
		case []byte:
			n = len(v)
		case string:
			n = len(v)
		case Symbol:
			n = len(v)
		}
		if n > 255 {
			return wide
		}
	}
	return narrow
}

// appendElement appends v without a constructor, in the encoding named by code.
func appendElement(b []byte, code byte, v any, depth int) ([]byte, error) {
	bad := func() ([]byte, error) {
		return b, fmt.Errorf("value of Go type %T does not fit constructor 0x%02x", v, code)
	}
	switch code {
	case TypeNull:
		if v != nil {
			return bad()
		}
		return b, nil
	case TypeBoolean:
		x, ok := v.(bool)
		if !ok {
			return bad()
		}
		if x {
			return append(b, 1), nil
		}
		return append(b, 0), nil
	case TypeUbyte:
		x, ok := v.(uint8)
		if !ok {
			return bad()
		}
		return append(b, x), nil
	case TypeByte:
		x, ok := v.(int8)
		if !ok {
			return bad()
		}
		return append(b, byte(x)), nil
	case TypeUshort:
		x, ok := v.(uint16)
		if !ok {
			return bad()
		}
		return binary.BigEndian.AppendUint16(b, x), nil
	case TypeShort:
		x, ok := v.(int16)
		if !ok {
			return bad()
		}
		return binary.BigEndian.AppendUint16(b, uint16(x)), nil
	case TypeUint:
		x, ok := v.(uint32)
		if !ok {
			return bad()
		}
		return binary.BigEndian.AppendUint32(b, x), nil
	case TypeInt:
		x, ok := v.(int32)
		if !ok {
			return bad()
		}
		return binary.BigEndian.AppendUint32(b, uint32(x)), nil
	case TypeChar:
		x, ok := v.(Char)
		if !ok {
			return bad()
		}
		if !validChar(x) {
			return b, fmt.Errorf("char 0x%x is not a Unicode scalar value", uint32(x))
		}
		return binary.BigEndian.AppendUint32(b, uint32(x)), nil
	case TypeFloat:
		x, ok := v.(float32)
		if !ok {
			return bad()
		}
		return binary.BigEndian.AppendUint32(b, math.Float32bits(x)), nil
	case TypeUlong:
		x, ok := v.(uint64)
		if !ok {
			return bad()
		}
		return binary.BigEndian.AppendUint64(b, x), nil
	case TypeLong:
		x, ok := v.(int64)
		if !ok {
			return bad()
		}
		return binary.BigEndian.AppendUint64(b, uint64(x)), nil
	case TypeDouble:
		x, ok := v.(float64)
		if !ok {
			return bad()
		}
		return binary.BigEndian.AppendUint64(b, math.Float64bits(x)), nil
	case TypeTimestamp:
		x, ok := v.(time.Time)
		if !ok {
			return bad()
		}
		return binary.BigEndian.AppendUint64(b, uint64(x.UnixMilli())), nil
	case TypeDecimal32:
		x, ok := v.(Decimal32)
		if !ok {
			return bad()
		}
		return append(b, x[:]...), nil
	case TypeDecimal64:
		x, ok := v.(Decimal64)
		if !ok {
			return bad()
		}
		return append(b, x[:]...), nil
	case TypeDecimal128:
		x, ok := v.(Decimal128)
		if !ok {
			return bad()
		}
		return append(b, x[:]...), nil
	case TypeUUID:
		x, ok := v.(UUID)
		if !ok {
			return bad()
		}
		return append(b, x[:]...), nil
	case TypeVbin8, TypeStr8, TypeSym8, TypeVbin32, TypeStr32, TypeSym32:
		var s []byte
		switch x := v.(type) {
		case []byte:
			if code != TypeVbin8 && code != TypeVbin32 {
				return bad()
			}
			s = x
		case string:
			if code != TypeStr8 && code != TypeStr32 {
				return bad()
			}
			if !utf8.ValidString(x) {
				return b, fmt.Errorf("string is not valid UTF-8")
			}
			s = []byte(x)
		case Symbol:
			if code != TypeSym8 && code != TypeSym32 {
				return bad()
			}
			s = []byte(x)
		default:
			return bad()
		}
		if code&0xf0 == 0xa0 {
			b = append(b, byte(len(s)))
		} else {
			b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		}
		return append(b, s...), nil
	case TypeList32, TypeMap32, TypeArray32:
		// Encode with a constructor into scratch, then force the 32-bit form.
		var tmp []byte
		var err error
		if tmp, err = appendAny(nil, v, depth); err != nil {
			return b, err
		}
		return appendWide(b, code, tmp)
	}
	return bad()
}

// appendWide re-emits an encoded compound (list, map or array in any width) as the
// 32-bit width named by code, without its constructor.
func appendWide(b []byte, code byte, enc []byte) ([]byte, error) {
	if len(enc) == 0 {
		return b, fmt.Errorf("empty encoding")
	}
	var size, count uint32
	var body []byte
	switch enc[0] {
	case TypeList0:
		if code != TypeList32 {
			return b, fmt.Errorf("list in a non-list array")
		}
		return append(b, 0, 0, 0, 4, 0, 0, 0, 0), nil
	case TypeList8, TypeMap8, TypeArray8:
		count = uint32(enc[2])
		body = enc[3:]
	case TypeList32, TypeMap32, TypeArray32:
		count = binary.BigEndian.Uint32(enc[5:])
		body = enc[9:]
	default:
		return b, fmt.Errorf("constructor 0x%02x in an array of 0x%02x", enc[0], code)
	}
	family := map[byte]byte{TypeList8: TypeList32, TypeList32: TypeList32, TypeMap8: TypeMap32,
		TypeMap32: TypeMap32, TypeArray8: TypeArray32, TypeArray32: TypeArray32}[enc[0]]
	if family != code {
		return b, fmt.Errorf("constructor 0x%02x in an array of 0x%02x", enc[0], code)
	}
	size = uint32(len(body) + 4)
	b = binary.BigEndian.AppendUint32(b, size)
	b = binary.BigEndian.AppendUint32(b, count)
	return append(b, body...), nil
}
