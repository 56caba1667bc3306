package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
	"unicode/utf8"
)

// MaxDepth bounds the nesting of lists, maps, arrays and described values that the
// decoder follows (and the encoder produces); deeper input is an error, never a stack
// overflow.
const MaxDepth = 64

// ErrMalformed is wrapped by every decoding error: truncated input, an unknown format
// code, a size or count that does not fit the bytes that remain, a wrong type for a
// field, a missing mandatory field, nesting beyond MaxDepth, invalid UTF-8.
var ErrMalformed = errors.New("amqp: malformed encoding")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

var errTruncated = malformed("truncated")

// Decoder reads AMQP values from a byte slice. Binary values, strings and payloads it
// returns never alias the input: they are copies the caller owns, except where a method
// says otherwise (ReadBinaryAlias). The zero Decoder reads nothing; use NewDecoder or
// Reset.
type Decoder struct {
	buf   []byte
	off   int
	depth int
}

// NewDecoder returns a decoder over b.
func NewDecoder(b []byte) *Decoder { return &Decoder{buf: b} }

// Reset makes d read b from its start.
func (d *Decoder) Reset(b []byte) { d.buf, d.off, d.depth = b, 0, 0 }

// Offset returns how many bytes have been consumed.
func (d *Decoder) Offset() int { return d.off }

// Remaining returns the bytes not consumed yet (aliasing the input).
func (d *Decoder) Remaining() []byte { return d.buf[d.off:] }

// Len returns the number of bytes not consumed yet.
func (d *Decoder) Len() int { return len(d.buf) - d.off }

func (d *Decoder) need(n int) error {
	if n < 0 || len(d.buf)-d.off < n {
		return errTruncated
	}
	return nil
}

// PeekCode returns the next format code without consuming it.
func (d *Decoder) PeekCode() (byte, error) {
	if err := d.need(1); err != nil {
		return 0, err
	}
	return d.buf[d.off], nil
}

func (d *Decoder) code() (byte, error) {
	if err := d.need(1); err != nil {
		return 0, err
	}
	c := d.buf[d.off]
	d.off++
	return c, nil
}

func (d *Decoder) u8() (byte, error) { return d.code() }

func (d *Decoder) u16() (uint16, error) {
	if err := d.need(2); err != nil {
		return 0, err
	}
	v := binary.BigEndian.Uint16(d.buf[d.off:])
	d.off += 2
	return v, nil
}

func (d *Decoder) u32() (uint32, error) {
	if err := d.need(4); err != nil {
		return 0, err
	}
	v := binary.BigEndian.Uint32(d.buf[d.off:])
	d.off += 4
	return v, nil
}

func (d *Decoder) u64() (uint64, error) {
	if err := d.need(8); err != nil {
		return 0, err
	}
	v := binary.BigEndian.Uint64(d.buf[d.off:])
	d.off += 8
	return v, nil
}

func (d *Decoder) bytes(n int) ([]byte, error) {
	if err := d.need(n); err != nil {
		return nil, err
	}
	v := d.buf[d.off : d.off+n : d.off+n]
	d.off += n
	return v, nil
}

// varLen reads the length prefix of a variable-width value whose constructor was c.
func (d *Decoder) varLen(c byte) (int, error) {
	var n int
	if c&0xf0 == 0xa0 {
		x, err := d.u8()
		if err != nil {
			return 0, err
		}
		n = int(x)
	} else {
		x, err := d.u32()
		if err != nil {
			return 0, err
		}
		if uint64(x) > uint64(d.Len()) {
			return 0, malformed("variable-width value of %d bytes with %d left", x, d.Len())
		}
		n = int(x)
	}
	return n, d.need(n)
}

// compoundHeader reads size and count of a list, map or array whose constructor was c
// and returns the count and the offset just past the compound. The count is checked
// against the size, so that no caller allocates for elements that cannot be there.
func (d *Decoder) compoundHeader(c byte) (count int, end int, err error) {
	switch c {
	case TypeList0:
		return 0, d.off, nil
	case TypeList8, TypeMap8, TypeArray8:
		size, err := d.u8()
		if err != nil {
			return 0, 0, err
		}
		if err := d.need(int(size)); err != nil {
			return 0, 0, err
		}
		if size < 1 {
			return 0, 0, malformed("compound 0x%02x of size 0", c)
		}
		end = d.off + int(size)
		n, _ := d.u8()
		count = int(n)
		if count > int(size)-1 && c != TypeArray8 {
			return 0, 0, malformed("compound 0x%02x claims %d elements in %d bytes", c, count, size-1)
		}
		// Arrays: at most one element per byte of size, as for array32. Without this
		// bound an array8 of 255 zero-width elements (nulls, list0) fits in 3 bytes, and
		// an array of such arrays decodes 85 values per input byte.
		if count > int(size) {
			return 0, 0, malformed("array claims %d elements in %d bytes", count, size)
		}
		return count, end, nil
	case TypeList32, TypeMap32, TypeArray32:
		size, err := d.u32()
		if err != nil {
			return 0, 0, err
		}
		if uint64(size) > uint64(d.Len()) || size < 4 {
			return 0, 0, malformed("compound 0x%02x of size %d with %d bytes left", c, size, d.Len())
		}
		end = d.off + int(size)
		n, _ := d.u32()
		if uint64(n) > uint64(size)-4 && c != TypeArray32 {
			return 0, 0, malformed("compound 0x%02x claims %d elements in %d bytes", c, n, size-4)
		}
		if uint64(n) > uint64(size) { // arrays: at most one element per byte of size
			return 0, 0, malformed("array claims %d elements in %d bytes", n, size)
		}
		return int(n), end, nil
	}
	return 0, 0, malformed("format code 0x%02x is not a compound", c)
}

// ReadAny reads one value of any type (see the package doc for the Go mapping).
// Described values whose descriptor is a composite type of this package are returned
// as that type (for example *Accepted, *Source); others as *Described.
func (d *Decoder) ReadAny() (any, error) {
	c, err := d.code()
	if err != nil {
		return nil, err
	}
	return d.readAnyWith(c)
}

func (d *Decoder) enter() error {
	d.depth++
	if d.depth > MaxDepth {
		return malformed("values nested deeper than %d", MaxDepth)
	}
	return nil
}

func (d *Decoder) readAnyWith(c byte) (any, error) {
	switch c {
	case TypeDescribed:
		if err := d.enter(); err != nil {
			return nil, err
		}
		defer func() { d.depth-- }()
		return d.readDescribedBody()
	case TypeList0, TypeList8, TypeList32:
		if err := d.enter(); err != nil {
			return nil, err
		}
		defer func() { d.depth-- }()
		n, end, err := d.compoundHeader(c)
		if err != nil {
			return nil, err
		}
		l := make([]any, n)
		for i := range l {
			if l[i], err = d.ReadAny(); err != nil {
				return nil, err
			}
		}
		return l, d.expectEnd(end)
	case TypeMap8, TypeMap32:
		if err := d.enter(); err != nil {
			return nil, err
		}
		defer func() { d.depth-- }()
		n, end, err := d.compoundHeader(c)
		if err != nil {
			return nil, err
		}
		if n%2 != 0 {
			return nil, malformed("map with an odd count %d", n)
		}
		m := &Map{Entries: make([]MapEntry, n/2)}
		for i := range m.Entries {
			if m.Entries[i].Key, err = d.ReadAny(); err != nil {
				return nil, err
			}
			if m.Entries[i].Value, err = d.ReadAny(); err != nil {
				return nil, err
			}
		}
		return m, d.expectEnd(end)
	case TypeArray8, TypeArray32:
		if err := d.enter(); err != nil {
			return nil, err
		}
		defer func() { d.depth-- }()
		return d.readArray(c)
	}
	return d.readPrimitive(c)
}

func (d *Decoder) expectEnd(end int) error {
	if d.off != end {
		return malformed("compound size disagrees with its contents (%d bytes off)", d.off-end)
	}
	return nil
}

func (d *Decoder) readPrimitive(c byte) (any, error) {
	switch c {
	case TypeNull:
		return nil, nil
	case TypeTrue:
		return true, nil
	case TypeFalse:
		return false, nil
	case TypeBoolean:
		x, err := d.u8()
		if err != nil {
			return nil, err
		}
		if x > 1 {
			return nil, malformed("boolean byte 0x%02x", x)
		}
		return x == 1, nil
	case TypeUbyte:
		return d.u8()
	case TypeUshort:
		return d.u16()
	case TypeUint:
		return d.u32()
	case TypeSmallUint:
		x, err := d.u8()
		return uint32(x), err
	case TypeUint0:
		return uint32(0), nil
	case TypeUlong:
		return d.u64()
	case TypeSmallUlong:
		x, err := d.u8()
		return uint64(x), err
	case TypeUlong0:
		return uint64(0), nil
	case TypeByte:
		x, err := d.u8()
		return int8(x), err
	case TypeShort:
		x, err := d.u16()
		return int16(x), err
	case TypeInt:
		x, err := d.u32()
		return int32(x), err
	case TypeSmallInt:
		x, err := d.u8()
		return int32(int8(x)), err
	case TypeLong:
		x, err := d.u64()
		return int64(x), err
	case TypeSmallLong:
		x, err := d.u8()
		return int64(int8(x)), err
	case TypeFloat:
		x, err := d.u32()
		return math.Float32frombits(x), err
	case TypeDouble:
		x, err := d.u64()
		return math.Float64frombits(x), err
	case TypeDecimal32:
		var v Decimal32
		b, err := d.bytes(4)
		copy(v[:], b)
		return v, err
	case TypeDecimal64:
		var v Decimal64
		b, err := d.bytes(8)
		copy(v[:], b)
		return v, err
	case TypeDecimal128:
		var v Decimal128
		b, err := d.bytes(16)
		copy(v[:], b)
		return v, err
	case TypeChar:
		x, err := d.u32()
		if err == nil && (x > utf8.MaxRune || (x >= 0xd800 && x <= 0xdfff)) {
			return nil, malformed("char 0x%x is not a Unicode code point", x)
		}
		return Char(x), err
	case TypeTimestamp:
		x, err := d.u64()
		return Milliseconds(int64(x)), err
	case TypeUUID:
		var v UUID
		b, err := d.bytes(16)
		copy(v[:], b)
		return v, err
	case TypeVbin8, TypeVbin32:
		n, err := d.varLen(c)
		if err != nil {
			return nil, err
		}
		b, _ := d.bytes(n)
		return slices.Clone(b), nil
	case TypeStr8, TypeStr32:
		n, err := d.varLen(c)
		if err != nil {
			return nil, err
		}
		b, _ := d.bytes(n)
		if !utf8.Valid(b) {
			return nil, malformed("string is not valid UTF-8")
		}
		return string(b), nil
	case TypeSym8, TypeSym32:
		n, err := d.varLen(c)
		if err != nil {
			return nil, err
		}
		b, _ := d.bytes(n)
		return Symbol(b), nil
	}
	return nil, malformed("unknown format code 0x%02x", c)
}

// fixedWidth returns the width of a fixed-width element (0 for the empty forms), or -1
// for variable-width and compound constructors.
func fixedWidth(c byte) int {
	switch c >> 4 {
	case 0x4:
		return 0
	case 0x5:
		return 1
	case 0x6:
		return 2
	case 0x7:
		return 4
	case 0x8:
		return 8
	case 0x9:
		return 16
	}
	return -1
}

func (d *Decoder) readArray(c byte) (any, error) {
	n, end, err := d.compoundHeader(c)
	if err != nil {
		return nil, err
	}
	a := &Array{}
	ec, err := d.code()
	if err != nil {
		return nil, err
	}
	if ec == TypeDescribed {
		if a.Descriptor, err = d.ReadAny(); err != nil {
			return nil, err
		}
		// Array.Descriptor nil means elements that are not described: a null
		// descriptor (reserved, part 1.2) cannot be kept, and dropping it would change
		// the value (and its re-encoding could break the one-element-per-byte bound).
		if a.Descriptor == nil {
			return nil, malformed("array element descriptor is null")
		}
		if ec, err = d.code(); err != nil {
			return nil, err
		}
	}
	if ec == TypeDescribed || !knownCode[ec] {
		return nil, malformed("array element constructor 0x%02x", ec)
	}
	a.Code = ec
	if w := fixedWidth(ec); w > 0 && n > (end-d.off)/w {
		return nil, malformed("array of %d elements of %d bytes in %d bytes", n, w, end-d.off)
	}
	if n > end-d.off && fixedWidth(ec) != 0 {
		return nil, malformed("array of %d elements in %d bytes", n, end-d.off)
	}
	a.Values = make([]any, n)
	for i := range a.Values {
		if a.Values[i], err = d.readElement(ec); err != nil {
			return nil, err
		}
	}
	return a, d.expectEnd(end)
}

// knownCode marks the format codes of part 1.6 (the described-type constructor 0x00
// included).
var knownCode = func() (t [256]bool) {
	for _, c := range []byte{TypeDescribed, TypeNull, TypeTrue, TypeFalse, TypeBoolean,
		TypeUbyte, TypeUshort, TypeUint, TypeSmallUint, TypeUint0, TypeUlong, TypeSmallUlong,
		TypeUlong0, TypeByte, TypeShort, TypeInt, TypeSmallInt, TypeLong, TypeSmallLong,
		TypeFloat, TypeDouble, TypeDecimal32, TypeDecimal64, TypeDecimal128, TypeChar,
		TypeTimestamp, TypeUUID, TypeVbin8, TypeVbin32, TypeStr8, TypeStr32, TypeSym8,
		TypeSym32, TypeList0, TypeList8, TypeList32, TypeMap8, TypeMap32, TypeArray8,
		TypeArray32} {
		t[c] = true
	}
	return t
}()

// readElement reads an array element that has no constructor of its own.
func (d *Decoder) readElement(c byte) (any, error) {
	switch c {
	case TypeList0, TypeList8, TypeList32, TypeMap8, TypeMap32, TypeArray8, TypeArray32:
		return d.readAnyWith(c)
	case TypeDescribed:
		return nil, malformed("array element constructor cannot be described twice")
	}
	return d.readPrimitive(c)
}

// readDescribedBody reads what follows a 0x00 constructor.
func (d *Decoder) readDescribedBody() (any, error) {
	desc, err := d.ReadAny()
	if err != nil {
		return nil, err
	}
	if code, ok := descriptorCode(desc); ok {
		if f := compositeByCode[code]; f != nil {
			v := f()
			if err := v.decodeValue(d); err != nil {
				return nil, err
			}
			return v, nil
		}
	}
	val, err := d.ReadAny()
	if err != nil {
		return nil, err
	}
	return &Described{Descriptor: desc, Value: val}, nil
}

// descriptorCode maps a numeric or symbolic descriptor to the numeric code of a type
// this package knows.
func descriptorCode(desc any) (uint64, bool) {
	switch x := desc.(type) {
	case uint64:
		return x, true
	case Symbol:
		c, ok := codeBySymbol[x]
		return c, ok
	}
	return 0, false
}

// Skip consumes one value of any type without building it.
func (d *Decoder) Skip() error {
	c, err := d.code()
	if err != nil {
		return err
	}
	return d.skipWith(c)
}

func (d *Decoder) skipWith(c byte) error {
	switch c {
	case TypeDescribed:
		if err := d.enter(); err != nil {
			return err
		}
		defer func() { d.depth-- }()
		if err := d.Skip(); err != nil {
			return err
		}
		return d.Skip()
	case TypeList0:
		return nil
	case TypeList8, TypeList32, TypeMap8, TypeMap32, TypeArray8, TypeArray32:
		n, end, err := d.compoundHeader(c)
		if err != nil {
			return err
		}
		if (c == TypeMap8 || c == TypeMap32) && n%2 != 0 {
			return malformed("map with an odd count %d", n)
		}
		d.off = end
		return nil
	case TypeVbin8, TypeVbin32, TypeStr8, TypeStr32, TypeSym8, TypeSym32:
		n, err := d.varLen(c)
		if err != nil {
			return err
		}
		d.off += n
		return nil
	}
	w := fixedWidth(c)
	if w < 0 || !knownCode[c] {
		return malformed("unknown format code 0x%02x", c)
	}
	if err := d.need(w); err != nil {
		return err
	}
	d.off += w
	return nil
}

// ReadDescriptor reads a described-type constructor and its descriptor and returns the
// descriptor's numeric code; symbolic descriptors of known types are mapped to their
// code, and an unknown symbolic descriptor (or one of another type) is an error.
func (d *Decoder) ReadDescriptor() (code uint64, err error) {
	c, err := d.code()
	if err != nil {
		return 0, err
	}
	if c != TypeDescribed {
		return 0, malformed("expected a described type, found format code 0x%02x", c)
	}
	desc, err := d.ReadAny()
	if err != nil {
		return 0, err
	}
	code, ok := descriptorCode(desc)
	if !ok {
		return 0, malformed("unknown descriptor %v", desc)
	}
	return code, nil
}

// PeekDescriptor returns the numeric descriptor code of the described value that
// starts b, without consuming anything.
func PeekDescriptor(b []byte) (uint64, error) {
	d := Decoder{buf: b}
	return d.ReadDescriptor()
}

// ReadListHeader reads the constructor, size and count of a list and returns the count
// and the offset where the list ends. A null is read as an empty list.
func (d *Decoder) ReadListHeader() (count int, end int, err error) {
	c, err := d.code()
	if err != nil {
		return 0, 0, err
	}
	if c == TypeNull {
		return 0, d.off, nil
	}
	switch c {
	case TypeList0, TypeList8, TypeList32:
		return d.compoundHeader(c)
	}
	return 0, 0, malformed("expected a list, found format code 0x%02x", c)
}

// Typed readers used by the generated composite decoders. Each accepts null (reported
// as null=true with the zero value) and the encodings of narrower types of the same
// signedness where a peer might use them.

func (d *Decoder) readUnsigned(max uint64, what string) (uint64, bool, error) {
	c, err := d.code()
	if err != nil {
		return 0, false, err
	}
	var v uint64
	switch c {
	case TypeNull:
		return 0, true, nil
	case TypeUint0, TypeUlong0:
	case TypeUbyte, TypeSmallUint, TypeSmallUlong:
		x, err := d.u8()
		if err != nil {
			return 0, false, err
		}
		v = uint64(x)
	case TypeUshort:
		x, err := d.u16()
		if err != nil {
			return 0, false, err
		}
		v = uint64(x)
	case TypeUint:
		x, err := d.u32()
		if err != nil {
			return 0, false, err
		}
		v = uint64(x)
	case TypeUlong:
		x, err := d.u64()
		if err != nil {
			return 0, false, err
		}
		v = x
	default:
		return 0, false, malformed("expected %s, found format code 0x%02x", what, c)
	}
	if v > max {
		return 0, false, malformed("%s value %d out of range", what, v)
	}
	return v, false, nil
}

// ReadUbyte reads a ubyte or null.
func (d *Decoder) ReadUbyte() (uint8, bool, error) {
	v, null, err := d.readUnsigned(math.MaxUint8, "ubyte")
	return uint8(v), null, err
}

// ReadUshort reads a ushort or null.
func (d *Decoder) ReadUshort() (uint16, bool, error) {
	v, null, err := d.readUnsigned(math.MaxUint16, "ushort")
	return uint16(v), null, err
}

// ReadUint reads a uint or null.
func (d *Decoder) ReadUint() (uint32, bool, error) {
	v, null, err := d.readUnsigned(math.MaxUint32, "uint")
	return uint32(v), null, err
}

// ReadUlong reads a ulong or null.
func (d *Decoder) ReadUlong() (uint64, bool, error) {
	return d.readUnsigned(math.MaxUint64, "ulong")
}

// ReadBool reads a boolean or null.
func (d *Decoder) ReadBool() (bool, bool, error) {
	c, err := d.code()
	if err != nil {
		return false, false, err
	}
	switch c {
	case TypeNull:
		return false, true, nil
	case TypeTrue:
		return true, false, nil
	case TypeFalse:
		return false, false, nil
	case TypeBoolean:
		x, err := d.u8()
		if err != nil {
			return false, false, err
		}
		if x > 1 {
			return false, false, malformed("boolean byte 0x%02x", x)
		}
		return x == 1, false, nil
	}
	return false, false, malformed("expected boolean, found format code 0x%02x", c)
}

// readText reads a str or sym payload (either, since peers mix them up in terminus
// addresses) and returns it aliasing the input.
func (d *Decoder) readText(what string, allowStr, allowSym bool) ([]byte, bool, error) {
	c, err := d.code()
	if err != nil {
		return nil, false, err
	}
	switch {
	case c == TypeNull:
		return nil, true, nil
	case allowStr && (c == TypeStr8 || c == TypeStr32), allowSym && (c == TypeSym8 || c == TypeSym32):
		n, err := d.varLen(c)
		if err != nil {
			return nil, false, err
		}
		b, _ := d.bytes(n)
		if c == TypeStr8 || c == TypeStr32 {
			if !utf8.Valid(b) {
				return nil, false, malformed("%s is not valid UTF-8", what)
			}
		}
		return b, false, nil
	}
	return nil, false, malformed("expected %s, found format code 0x%02x", what, c)
}

// ReadString reads a string or null.
func (d *Decoder) ReadString() (string, bool, error) {
	b, null, err := d.readText("string", true, false)
	return string(b), null, err
}

// ReadSymbol reads a symbol or null.
func (d *Decoder) ReadSymbol() (Symbol, bool, error) {
	b, null, err := d.readText("symbol", false, true)
	return Symbol(b), null, err
}

// ReadAddress reads a terminus or message address: a string or a symbol, or null.
func (d *Decoder) ReadAddress() (string, bool, error) {
	b, null, err := d.readText("address", true, true)
	return string(b), null, err
}

// ReadBinary reads binary data or null into a new slice the caller owns.
func (d *Decoder) ReadBinary() ([]byte, bool, error) {
	b, null, err := d.ReadBinaryAlias()
	if b != nil {
		b = slices.Clone(b)
	}
	return b, null, err
}

// ReadBinaryAlias reads binary data or null and returns it aliasing the input: valid
// only while the input is.
func (d *Decoder) ReadBinaryAlias() ([]byte, bool, error) {
	c, err := d.code()
	if err != nil {
		return nil, false, err
	}
	switch c {
	case TypeNull:
		return nil, true, nil
	case TypeVbin8, TypeVbin32:
		n, err := d.varLen(c)
		if err != nil {
			return nil, false, err
		}
		b, _ := d.bytes(n)
		return b, false, nil
	}
	return nil, false, malformed("expected binary, found format code 0x%02x", c)
}

// ReadTimestamp reads a timestamp or null.
func (d *Decoder) ReadTimestamp() (time.Time, bool, error) {
	c, err := d.code()
	if err != nil {
		return time.Time{}, false, err
	}
	switch c {
	case TypeNull:
		return time.Time{}, true, nil
	case TypeTimestamp:
		x, err := d.u64()
		return Milliseconds(int64(x)), false, err
	}
	return time.Time{}, false, malformed("expected timestamp, found format code 0x%02x", c)
}

// ReadSymbols reads a symbol-typed field that may hold several values: an array of
// symbols, a single symbol (which the spec allows in place of a one-element array) or
// null.
func (d *Decoder) ReadSymbols() ([]Symbol, error) {
	c, err := d.PeekCode()
	if err != nil {
		return nil, err
	}
	switch c {
	case TypeNull:
		d.off++
		return nil, nil
	case TypeSym8, TypeSym32:
		s, _, err := d.ReadSymbol()
		return []Symbol{s}, err
	case TypeArray8, TypeArray32:
		d.off++
		n, end, err := d.compoundHeader(c)
		if err != nil {
			return nil, err
		}
		ec, err := d.code()
		if err != nil {
			return nil, err
		}
		if ec != TypeSym8 && ec != TypeSym32 {
			return nil, malformed("expected an array of symbols, found element code 0x%02x", ec)
		}
		if n > end-d.off {
			return nil, malformed("array of %d symbols in %d bytes", n, end-d.off)
		}
		out := make([]Symbol, n)
		for i := range out {
			l, err := d.varLen(ec)
			if err != nil {
				return nil, err
			}
			b, _ := d.bytes(l)
			out[i] = Symbol(b)
		}
		return out, d.expectEnd(end)
	}
	return nil, malformed("expected symbols, found format code 0x%02x", c)
}

// readMapHeader reads a map constructor or null.
func (d *Decoder) readMapHeader() (count int, end int, null bool, err error) {
	c, err := d.code()
	if err != nil {
		return 0, 0, false, err
	}
	if c == TypeNull {
		return 0, 0, true, nil
	}
	if c != TypeMap8 && c != TypeMap32 {
		return 0, 0, false, malformed("expected a map, found format code 0x%02x", c)
	}
	n, end, err := d.compoundHeader(c)
	if err == nil && n%2 != 0 {
		err = malformed("map with an odd count %d", n)
	}
	return n / 2, end, false, err
}

// ReadFields reads a map with symbol keys (the fields type) or null. String keys are
// accepted and converted, since some peers send them.
func (d *Decoder) ReadFields() (Fields, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer func() { d.depth-- }()
	n, end, null, err := d.readMapHeader()
	if err != nil || null {
		return nil, err
	}
	f := make(Fields, sizeHint(n))
	for range n {
		k, _, err := d.readText("fields key", true, true)
		if err != nil {
			return nil, err
		}
		v, err := d.ReadAny()
		if err != nil {
			return nil, err
		}
		f[Symbol(k)] = v
	}
	return f, d.expectEnd(end)
}

// ReadAnnotations reads an annotations map (symbol or ulong keys) or null.
func (d *Decoder) ReadAnnotations() (Annotations, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer func() { d.depth-- }()
	n, end, null, err := d.readMapHeader()
	if err != nil || null {
		return nil, err
	}
	a := make(Annotations, sizeHint(n))
	for range n {
		k, err := d.ReadAny()
		if err != nil {
			return nil, err
		}
		switch k.(type) {
		case Symbol, uint64:
		default:
			return nil, malformed("annotation key of type %T", k)
		}
		v, err := d.ReadAny()
		if err != nil {
			return nil, err
		}
		a[k] = v
	}
	return a, d.expectEnd(end)
}

// ReadStringMap reads a map with string keys (application-properties) or null.
func (d *Decoder) ReadStringMap() (map[string]any, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer func() { d.depth-- }()
	n, end, null, err := d.readMapHeader()
	if err != nil || null {
		return nil, err
	}
	m := make(map[string]any, sizeHint(n))
	for range n {
		k, _, err := d.readText("application-properties key", true, false)
		if err != nil {
			return nil, err
		}
		v, err := d.ReadAny()
		if err != nil {
			return nil, err
		}
		m[string(k)] = v
	}
	return m, d.expectEnd(end)
}

// sizeHint bounds the capacity given to make for a Go map from a count read off the
// wire: a map header can claim one pair per two bytes of its size, and a Go map costs
// about forty bytes a slot, so the claim alone could make a 1 MiB frame allocate 40 MiB
// before its first key was found to be garbage. Larger maps grow as they are read.
func sizeHint(n int) int { return min(n, 64) }

func sortStrings(s []string) { slices.Sort(s) }
func sortUint64s(s []uint64) { slices.Sort(s) }
