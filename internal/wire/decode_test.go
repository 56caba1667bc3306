package wire

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"
)

// TestDecodeWideForms decodes encodings that the encoder never produces (a wider form
// than needed, the boolean constructor 0x56, zero-width array elements): a peer may
// send any of them.
func TestDecodeWideForms(t *testing.T) {
	cases := []struct {
		name string
		hex  string
		want any
	}{
		{"boolean 0x56 true", "56 01", true},
		{"boolean 0x56 false", "56 00", false},
		{"uint holding 3", "70 00000003", uint32(3)},
		{"uint holding 0", "70 00000000", uint32(0)},
		{"smalluint holding 0", "52 00", uint32(0)},
		{"ulong holding 5", "80 0000000000000005", uint64(5)},
		{"smallulong holding 0", "53 00", uint64(0)},
		{"int holding 1", "71 00000001", int32(1)},
		{"long holding -1", "81 ffffffffffffffff", int64(-1)},
		{"vbin32 empty", "b0 00000000", []byte{}},
		{"vbin32 holding 2", "b0 00000002 0102", []byte{1, 2}},
		{"str32 holding 3 bytes", "b1 00000003 616263", "abc"},
		{"str32 empty", "b1 00000000", ""},
		{"sym32 holding 1 byte", "b3 00000001 61", Symbol("a")},
		{"list8 empty", "c0 01 00", []any{}},
		{"list32 empty", "d0 00000004 00000000", []any{}},
		{"list32 small", "d0 00000006 00000002 40 41", []any{nil, true}},
		{"map32 empty", "d1 00000004 00000000", &Map{Entries: []MapEntry{}}},
		{"map32 small", "d1 00000008 00000002 a10161 40", &Map{Entries: []MapEntry{{"a", nil}}}},
		{"array32 small", "f0 00000006 00000001 50 07", &Array{Code: TypeUbyte, Values: []any{uint8(7)}}},
		{"array32 empty", "f0 00000005 00000000 a1", &Array{Code: TypeStr8, Values: []any{}}},
		{"array of sym32", "e0 07 01 b3 00000001 61", &Array{Code: TypeSym32, Values: []any{Symbol("a")}}},
		{"array of smalluint", "e0 04 02 52 01 02", &Array{Code: TypeSmallUint, Values: []any{uint32(1), uint32(2)}}},
		{"array of smallulong", "e0 03 01 53 09", &Array{Code: TypeSmallUlong, Values: []any{uint64(9)}}},
		{"array of smallint", "e0 03 01 54 ff", &Array{Code: TypeSmallInt, Values: []any{int32(-1)}}},
		{"array of smalllong", "e0 03 01 55 ff", &Array{Code: TypeSmallLong, Values: []any{int64(-1)}}},
		{"array of true (zero width)", "e0 02 02 41", &Array{Code: TypeTrue, Values: []any{true, true}}},
		{"array of false (zero width)", "e0 02 01 42", &Array{Code: TypeFalse, Values: []any{false}}},
		{"array of uint0 (zero width)", "e0 02 02 43", &Array{Code: TypeUint0, Values: []any{uint32(0), uint32(0)}}},
		{"array of ulong0 (zero width)", "e0 02 01 44", &Array{Code: TypeUlong0, Values: []any{uint64(0)}}},
		{"array of list0 (zero width)", "e0 02 02 45", &Array{Code: TypeList0, Values: []any{[]any{}, []any{}}}},
		{"array of list8", "e0 07 02 c0 0100 020141", &Array{Code: TypeList8, Values: []any{[]any{}, []any{true}}}},
		{"array of map8", "e0 08 01 c1 05 02 a10161 40",
			&Array{Code: TypeMap8, Values: []any{&Map{Entries: []MapEntry{{"a", nil}}}}}},
		{"array of array8", "e0 06 01 e0 03 01 50 01", &Array{Code: TypeArray8, Values: []any{&Array{Code: TypeUbyte, Values: []any{uint8(1)}}}}},
		{"described with sym32 descriptor", "00 b3 00000003 783a79 40", &Described{Descriptor: Symbol("x:y"), Value: nil}},
		{"described descriptor of another type", "00 a1 01 78 41", &Described{Descriptor: "x", Value: true}},
		{"described inside described", "00 53 99 00 53 98 40",
			&Described{Descriptor: uint64(0x99), Value: &Described{Descriptor: uint64(0x98), Value: nil}}},
		{"composite with symbolic descriptor", "00 a3 12 616d71703a72656c65617365643a6c697374 45", &Released{}},
		{"composite from a wide ulong descriptor", "00 80 0000000000000024 d0 00000004 00000000", &Accepted{}},
		{"composite with null fields list", "00 53 26 40", &Released{}},
		{"timestamp max", "83 7fffffffffffffff", Milliseconds(math.MaxInt64)},
		{"timestamp min", "83 8000000000000000", Milliseconds(math.MinInt64)},
		{"char 0", "73 00000000", Char(0)},
		{"char below surrogates", "73 0000d7ff", Char(0xd7ff)},
		{"char above surrogates", "73 0000e000", Char(0xe000)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := hx(c.hex)
			d := NewDecoder(in)
			got, err := d.ReadAny()
			if err != nil {
				t.Fatalf("ReadAny(% x): %v", in, err)
			}
			if !equalStrict(got, c.want) {
				t.Fatalf("ReadAny(% x)\n got %#v\nwant %#v", in, got, c.want)
			}
			if d.Len() != 0 {
				t.Fatalf("%d bytes left", d.Len())
			}
			d.Reset(in)
			if err := d.Skip(); err != nil || d.Len() != 0 {
				t.Fatalf("Skip: %v with %d bytes left", err, d.Len())
			}
			// Whatever was read re-encodes into something that reads back the same.
			enc, err := AppendAny(nil, got)
			if err != nil {
				t.Fatalf("AppendAny: %v", err)
			}
			again, err := NewDecoder(enc).ReadAny()
			if err != nil || !equalAMQP(again, got) {
				t.Fatalf("re-encoded % x reads back %#v, %v", enc, again, err)
			}
		})
	}
}

// TestDecodeErrors: every malformed input is an error that wraps ErrMalformed.
func TestDecodeErrors(t *testing.T) {
	cases := []struct{ name, hex string }{
		{"empty", ""},
		{"unknown code 0x46", "46"},
		{"unknown code 0x57", "57 00"},
		{"unknown code 0xff", "ff"},
		{"reserved 0x01", "01"},
		{"truncated ubyte", "50"},
		{"truncated ushort", "60 01"},
		{"truncated uint", "70 000001"},
		{"truncated ulong", "80 00000000000001"},
		{"truncated double", "82 3ff8"},
		{"truncated uuid", "98 0102"},
		{"truncated decimal128", "94 00"},
		{"truncated timestamp", "83 00"},
		{"truncated vbin8", "a0 05 0102"},
		{"truncated vbin32 length", "b0 0000"},
		{"truncated str8", "a1 05 61"},
		{"truncated sym32", "b3 00000002 61"},
		{"boolean byte 2", "56 02"},
		{"boolean byte ff", "56 ff"},
		{"invalid UTF-8 str8", "a1 02 c328"},
		{"invalid UTF-8 str32", "b1 00000001 ff"},
		{"UTF-8 surrogate in string", "a1 03 eda080"},
		{"overlong UTF-8", "a1 02 c0af"},
		{"char beyond U+10FFFF", "73 00110000"},
		{"char surrogate d800", "73 0000d800"},
		{"char surrogate dfff", "73 0000dfff"},
		{"char ffffffff", "73 ffffffff"},
		{"list8 size 0", "c0 00"},
		{"list8 truncated", "c0 05 01 40"},
		{"list8 count beyond size", "c0 02 05 40"},
		{"list8 fewer elements than size", "c0 03 01 40 40"},
		{"list8 more elements than size", "c0 02 02 40 40"},
		{"list8 element truncated", "c0 02 01 50"},
		{"list8 element overruns size", "c0 02 01 a1 01 61"},
		{"list32 size below 4", "d0 00000003 000000"},
		{"list32 size beyond input", "d0 00000010 00000001 40"},
		{"list32 count beyond size", "d0 00000005 00000002 40"},
		{"map8 odd count", "c1 02 01 40"},
		{"map32 odd count", "d1 00000007 00000003 40 40 40"},
		{"map8 missing value", "c1 02 02 40"},
		{"array8 size 0", "e0 00"},
		{"array8 without constructor", "e0 01 00"},
		{"array8 unknown constructor", "e0 02 00 ff"},
		{"array8 unknown constructor 0x46", "e0 02 00 46"},
		{"array8 described twice", "e0 05 00 00 40 00 40"},
		{"array8 describing an empty array twice", "e0 04 00 00 40 00"},
		{"array8 elements too short", "e0 04 02 70 0000"},
		{"array8 more zero-width elements than bytes", "e0 02 03 40"},
		{"array8 255 nulls in 2 bytes", "e0 02 ff 40"},
		{"array32 count beyond size", "f0 00000005 00000006 40"},
		{"array32 fixed elements beyond size", "f0 00000007 00000002 70 0000"},
		{"array of invalid chars", "e0 06 01 73 0000d800"},
		{"array of invalid strings", "e0 04 01 a1 01ff"},
		{"array element overruns array", "e0 03 01 a1 05 6161616161"},
		{"described without value", "00 53 99"},
		{"described without descriptor", "00"},
		{"described known composite with bad body", "00 53 10 41"},
		{"described known composite missing mandatory", "00 53 10 45"},
	}
	for _, c := range cases {
		in := hx(c.hex)
		v, err := NewDecoder(in).ReadAny()
		if err == nil {
			t.Errorf("%s: ReadAny(% x) = %#v, want an error", c.name, in, v)
			continue
		}
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: error %q does not wrap ErrMalformed", c.name, err)
		}
	}
}

func TestSkipErrors(t *testing.T) {
	for _, h := range []string{"", "46", "ff", "50", "a1 05 61", "c0 05 01", "d0 00000003", "00", "00 53", "b0 ffffffff"} {
		in := hx(h)
		requireMalformed(t, NewDecoder(in).Skip(), "Skip("+h+")")
	}
}

// TestTypedReaders covers the readers that the generated decoders use: null handling,
// narrower encodings accepted, wrong types and out-of-range values refused.
func TestTypedReaders(t *testing.T) {
	t.Run("unsigned", func(t *testing.T) {
		ok := []struct {
			hex  string
			read func(*Decoder) (uint64, bool, error)
			want uint64
			null bool
		}{
			{"40", rdUint, 0, true},
			{"43", rdUint, 0, false},
			{"52 05", rdUint, 5, false},
			{"50 05", rdUint, 5, false},
			{"60 0105", rdUint, 0x105, false},
			{"70 01020304", rdUint, 0x01020304, false},
			{"80 00000000ffffffff", rdUint, math.MaxUint32, false},
			{"44", rdUint, 0, false},
			{"53 07", rdUint, 7, false},
			{"80 ffffffffffffffff", rdUlong, math.MaxUint64, false},
			{"52 ff", rdUbyte, 255, false},
			{"70 0000ffff", rdUshort, 0xffff, false},
			{"40", rdUshort, 0, true},
		}
		for _, c := range ok {
			got, null, err := c.read(NewDecoder(hx(c.hex)))
			if err != nil || got != c.want || null != c.null {
				t.Errorf("% s: got %d null=%v err=%v, want %d null=%v", c.hex, got, null, err, c.want, c.null)
			}
		}
		bad := []struct {
			hex  string
			read func(*Decoder) (uint64, bool, error)
		}{
			{"80 0000000100000000", rdUint},
			{"70 00000100", rdUbyte},
			{"70 00010000", rdUshort},
			{"54 01", rdUint},
			{"71 00000001", rdUint},
			{"a1 01 31", rdUint},
			{"41", rdUlong},
			{"", rdUint},
			{"70 00", rdUint},
		}
		for _, c := range bad {
			_, _, err := c.read(NewDecoder(hx(c.hex)))
			requireMalformed(t, err, c.hex)
		}
	})
	t.Run("bool", func(t *testing.T) {
		for h, want := range map[string][2]bool{"40": {false, true}, "41": {true, false}, "42": {false, false}, "56 01": {true, false}, "56 00": {false, false}} {
			v, null, err := NewDecoder(hx(h)).ReadBool()
			if err != nil || v != want[0] || null != want[1] {
				t.Errorf("ReadBool(%s) = %v %v %v", h, v, null, err)
			}
		}
		for _, h := range []string{"56 02", "56", "50 01", ""} {
			_, _, err := NewDecoder(hx(h)).ReadBool()
			requireMalformed(t, err, "ReadBool "+h)
		}
	})
	t.Run("text", func(t *testing.T) {
		s, null, err := NewDecoder(hx("b1 00000002 6869")).ReadString()
		if s != "hi" || null || err != nil {
			t.Errorf("ReadString str32: %q %v %v", s, null, err)
		}
		_, _, err = NewDecoder(hx("a3 01 61")).ReadString()
		requireMalformed(t, err, "ReadString of a symbol")
		_, _, err = NewDecoder(hx("a1 01 ff")).ReadString()
		requireMalformed(t, err, "ReadString invalid UTF-8")
		sym, _, err := NewDecoder(hx("b3 00000001 61")).ReadSymbol()
		if sym != "a" || err != nil {
			t.Errorf("ReadSymbol sym32: %q %v", sym, err)
		}
		_, _, err = NewDecoder(hx("a1 01 61")).ReadSymbol()
		requireMalformed(t, err, "ReadSymbol of a string")
		for _, h := range []string{"a1 01 61", "a3 01 61", "b1 00000001 61", "b3 00000001 61"} {
			a, null, err := NewDecoder(hx(h)).ReadAddress()
			if a != "a" || null || err != nil {
				t.Errorf("ReadAddress(%s) = %q %v %v", h, a, null, err)
			}
		}
		_, null, err = NewDecoder(hx("40")).ReadAddress()
		if !null || err != nil {
			t.Errorf("ReadAddress(null) = %v %v", null, err)
		}
		_, _, err = NewDecoder(hx("a0 01 61")).ReadAddress()
		requireMalformed(t, err, "ReadAddress of binary")
	})
	t.Run("binary", func(t *testing.T) {
		in := hx("a0 02 0102")
		b, null, err := NewDecoder(in).ReadBinary()
		if !bytes.Equal(b, []byte{1, 2}) || null || err != nil {
			t.Fatalf("ReadBinary: %v %v %v", b, null, err)
		}
		in[2] = 9
		if b[0] != 1 {
			t.Fatal("ReadBinary aliases its input")
		}
		alias, _, _ := NewDecoder(in).ReadBinaryAlias()
		in[3] = 8
		if alias[1] != 8 {
			t.Fatal("ReadBinaryAlias copied its input")
		}
		if cap(alias) != 2 {
			t.Fatalf("ReadBinaryAlias capacity %d reaches past the value", cap(alias))
		}
		b, null, err = NewDecoder(hx("a0 00")).ReadBinary()
		if b == nil || len(b) != 0 || null || err != nil {
			t.Fatalf("ReadBinary(empty) = %#v %v %v, want a non-nil empty slice", b, null, err)
		}
		b, null, err = NewDecoder(hx("40")).ReadBinary()
		if b != nil || !null || err != nil {
			t.Fatalf("ReadBinary(null) = %#v %v %v", b, null, err)
		}
		_, _, err = NewDecoder(hx("a1 00")).ReadBinary()
		requireMalformed(t, err, "ReadBinary of a string")
	})
	t.Run("timestamp", func(t *testing.T) {
		ts, null, err := NewDecoder(hx("83 0000000000000001")).ReadTimestamp()
		if !ts.Equal(time.UnixMilli(1)) || null || err != nil {
			t.Errorf("ReadTimestamp: %v %v %v", ts, null, err)
		}
		if ts.Location() != time.UTC {
			t.Errorf("timestamp in %v, want UTC", ts.Location())
		}
		_, null, err = NewDecoder(hx("40")).ReadTimestamp()
		if !null || err != nil {
			t.Errorf("ReadTimestamp(null): %v %v", null, err)
		}
		_, _, err = NewDecoder(hx("81 0000000000000001")).ReadTimestamp()
		requireMalformed(t, err, "ReadTimestamp of a long")
	})
	t.Run("symbols", func(t *testing.T) {
		cases := []struct {
			hex  string
			want []Symbol
		}{
			{"40", nil},
			{"a3 01 61", []Symbol{"a"}},
			{"b3 00000001 61", []Symbol{"a"}},
			{"e0 02 00 a3", []Symbol{}},
			{"e0 06 02 a3 0161 0162", []Symbol{"a", "b"}},
			{"f0 0000000e 00000002 b3 00000001 61 00000000", []Symbol{"a", ""}},
		}
		for _, c := range cases {
			got, err := NewDecoder(hx(c.hex)).ReadSymbols()
			if err != nil || !equalStrict(got, c.want) {
				t.Errorf("ReadSymbols(%s) = %#v %v, want %#v", c.hex, got, err, c.want)
			}
		}
		for _, h := range []string{"a1 01 61", "e0 03 01 a1 00", "e0 04 02 a3 0161 0162", "e0 05 02 a3 0161 02", "e0 02 03 a3", "45", ""} {
			_, err := NewDecoder(hx(h)).ReadSymbols()
			requireMalformed(t, err, "ReadSymbols "+h)
		}
	})
	t.Run("maps", func(t *testing.T) {
		f, err := NewDecoder(hx("c1 0a 04 a3 0161 40 a1 0162 5401")).ReadFields()
		if err != nil || !equalStrict(f, Fields{"a": nil, "b": int32(1)}) {
			t.Errorf("ReadFields with a string key: %#v %v", f, err)
		}
		f, err = NewDecoder(hx("40")).ReadFields()
		if f != nil || err != nil {
			t.Errorf("ReadFields(null) = %#v %v", f, err)
		}
		for _, h := range []string{"c1 03 02 5301 40", "c1 02 01 40", "45", "c1 05 02 a1 01ff 40"} {
			_, err := NewDecoder(hx(h)).ReadFields()
			requireMalformed(t, err, "ReadFields "+h)
		}
		a, err := NewDecoder(hx("c1 08 04 5301 40 a3 0178 41")).ReadAnnotations()
		if err != nil || !equalStrict(a, Annotations{uint64(1): nil, Symbol("x"): true}) {
			t.Errorf("ReadAnnotations: %#v %v", a, err)
		}
		for _, h := range []string{"c1 05 02 a1 0178 41", "c1 04 02 5201 41", "c1 03 02 45 41"} {
			_, err := NewDecoder(hx(h)).ReadAnnotations()
			requireMalformed(t, err, "ReadAnnotations "+h)
		}
		m, err := NewDecoder(hx("c1 05 02 a1 0178 41")).ReadStringMap()
		if err != nil || !equalStrict(m, map[string]any{"x": true}) {
			t.Errorf("ReadStringMap: %#v %v", m, err)
		}
		_, err = NewDecoder(hx("c1 05 02 a3 0178 41")).ReadStringMap()
		requireMalformed(t, err, "ReadStringMap with a symbol key")
	})
	t.Run("list header", func(t *testing.T) {
		for h, want := range map[string][2]int{"40": {0, 1}, "45": {0, 1}, "c0 02 01 40": {1, 4}, "d0 00000005 00000001 40": {1, 10}} {
			n, end, err := NewDecoder(hx(h)).ReadListHeader()
			if err != nil || n != want[0] || end != want[1] {
				t.Errorf("ReadListHeader(%s) = %d %d %v, want %v", h, n, end, err, want)
			}
		}
		_, _, err := NewDecoder(hx("c1 01 00")).ReadListHeader()
		requireMalformed(t, err, "ReadListHeader of a map")
	})
	t.Run("descriptor", func(t *testing.T) {
		for h, want := range map[string]uint64{"00 53 10": DescriptorOpen, "00 a3 0e 616d71703a6f70656e3a6c697374": DescriptorOpen,
			"00 80 0000000000000075": DescriptorData, "00 44": 0} {
			got, err := PeekDescriptor(hx(h))
			if err != nil || got != want {
				t.Errorf("PeekDescriptor(%s) = %#x %v, want %#x", h, got, err, want)
			}
		}
		for _, h := range []string{"53 10", "00 a3 03 782a79", "00 a1 01 78", "00", ""} {
			_, err := PeekDescriptor(hx(h))
			requireMalformed(t, err, "PeekDescriptor "+h)
		}
	})
	t.Run("peek", func(t *testing.T) {
		d := NewDecoder(hx("41 42"))
		c, err := d.PeekCode()
		if c != TypeTrue || err != nil || d.Offset() != 0 {
			t.Fatalf("PeekCode = %#x %v at %d", c, err, d.Offset())
		}
		if !bytes.Equal(d.Remaining(), hx("41 42")) {
			t.Fatalf("Remaining = % x", d.Remaining())
		}
		var zero Decoder
		if _, err := zero.ReadAny(); !errors.Is(err, ErrMalformed) {
			t.Fatalf("zero Decoder ReadAny: %v", err)
		}
	})
}

func rdUint(d *Decoder) (uint64, bool, error) {
	v, n, err := d.ReadUint()
	return uint64(v), n, err
}
func rdUshort(d *Decoder) (uint64, bool, error) {
	v, n, err := d.ReadUshort()
	return uint64(v), n, err
}
func rdUbyte(d *Decoder) (uint64, bool, error) {
	v, n, err := d.ReadUbyte()
	return uint64(v), n, err
}
func rdUlong(d *Decoder) (uint64, bool, error) { return d.ReadUlong() }

// TestDecodedValuesDoNotAliasInput: binary values, strings and symbols are copies.
func TestDecodedValuesDoNotAliasInput(t *testing.T) {
	in := hx("c0 0a 03 a0 01 61 a1 01 62 a3 01 63")
	v, err := NewDecoder(in).ReadAny()
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		in[i] = 0
	}
	want := []any{[]byte("a"), "b", Symbol("c")}
	if !equalStrict(v, want) {
		t.Fatalf("after clearing the input: %#v", v)
	}
}

func TestSkipRefusesOddMap(t *testing.T) {
	for _, h := range []string{"c1 02 01 40", "d1 00000005 00000001 40"} {
		requireMalformed(t, NewDecoder(hx(h)).Skip(), "Skip "+h)
	}
}
