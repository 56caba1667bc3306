package wire

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
)

// primitiveCase is one value, the exact bytes AppendAny must produce for it, and (when
// hasBack) the value ReadAny gives back when it differs from v.
type primitiveCase struct {
	name    string
	v       any
	hex     string
	back    any
	hasBack bool
}

var uuidFixture = UUID{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}

func repeatAny(v any, n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// primitiveCases covers every format code in each width the encoder chooses, with the
// boundaries where it switches from one width to the next.
var primitiveCases = []primitiveCase{
	{name: "null", v: nil, hex: "40"},
	{name: "true", v: true, hex: "41"},
	{name: "false", v: false, hex: "42"},
	{name: "ubyte", v: uint8(0xab), hex: "50 ab"},
	{name: "ubyte 0", v: uint8(0), hex: "50 00"},
	{name: "ushort", v: uint16(0x1234), hex: "60 1234"},
	{name: "ushort max", v: uint16(math.MaxUint16), hex: "60 ffff"},
	{name: "uint0", v: uint32(0), hex: "43"},
	{name: "smalluint 1", v: uint32(1), hex: "52 01"},
	{name: "smalluint 255", v: uint32(255), hex: "52 ff"},
	{name: "uint 256", v: uint32(256), hex: "70 00000100"},
	{name: "uint max", v: uint32(math.MaxUint32), hex: "70 ffffffff"},
	{name: "ulong0", v: uint64(0), hex: "44"},
	{name: "smallulong 1", v: uint64(1), hex: "53 01"},
	{name: "smallulong 255", v: uint64(255), hex: "53 ff"},
	{name: "ulong 256", v: uint64(256), hex: "80 0000000000000100"},
	{name: "ulong max", v: uint64(math.MaxUint64), hex: "80 ffffffffffffffff"},
	{name: "byte", v: int8(-2), hex: "51 fe"},
	{name: "byte max", v: int8(127), hex: "51 7f"},
	{name: "short", v: int16(-2), hex: "61 fffe"},
	{name: "short min", v: int16(math.MinInt16), hex: "61 8000"},
	{name: "smallint 0", v: int32(0), hex: "54 00"},
	{name: "smallint -128", v: int32(-128), hex: "54 80"},
	{name: "smallint 127", v: int32(127), hex: "54 7f"},
	{name: "int 128", v: int32(128), hex: "71 00000080"},
	{name: "int -129", v: int32(-129), hex: "71 ffffff7f"},
	{name: "int min", v: int32(math.MinInt32), hex: "71 80000000"},
	{name: "smalllong -1", v: int64(-1), hex: "55 ff"},
	{name: "smalllong 127", v: int64(127), hex: "55 7f"},
	{name: "long 128", v: int64(128), hex: "81 0000000000000080"},
	{name: "long -129", v: int64(-129), hex: "81 ffffffffffffff7f"},
	{name: "long min", v: int64(math.MinInt64), hex: "81 8000000000000000"},
	{name: "float", v: float32(1.5), hex: "72 3fc00000"},
	{name: "float -0", v: float32(math.Copysign(0, -1)), hex: "72 80000000"},
	{name: "float +Inf", v: float32(math.Inf(1)), hex: "72 7f800000"},
	{name: "float -Inf", v: float32(math.Inf(-1)), hex: "72 ff800000"},
	{name: "float NaN payload", v: math.Float32frombits(0x7fc00001), hex: "72 7fc00001"},
	{name: "double", v: 1.5, hex: "82 3ff8000000000000"},
	{name: "double +Inf", v: math.Inf(1), hex: "82 7ff0000000000000"},
	{name: "double -Inf", v: math.Inf(-1), hex: "82 fff0000000000000"},
	{name: "double NaN payload", v: math.Float64frombits(0x7ff8000000000001), hex: "82 7ff8000000000001"},
	{name: "decimal32", v: Decimal32{0x22, 0x50, 0x00, 0x01}, hex: "74 22500001"},
	{name: "decimal64", v: Decimal64{0x22, 0x38, 0, 0, 0, 0, 0, 0x07}, hex: "84 2238000000000007"},
	{name: "decimal128", v: Decimal128{0x22, 0x08, 15: 0x2a}, hex: "94 2208000000000000000000000000002a"},
	{name: "char ascii", v: Char('a'), hex: "73 00000061"},
	{name: "char euro", v: Char('€'), hex: "73 000020ac"},
	{name: "char max", v: Char(0x10ffff), hex: "73 0010ffff"},
	{name: "timestamp", v: Milliseconds(1700000000123), hex: "83 0000018bcfe5687b"},
	{name: "timestamp epoch", v: Milliseconds(0), hex: "83 0000000000000000"},
	{name: "timestamp negative", v: Milliseconds(-1), hex: "83 ffffffffffffffff"},
	{name: "timestamp year 1", v: Milliseconds(-62135596800000), hex: "83 ffffc77cedd32800"},
	{name: "uuid", v: uuidFixture, hex: "98 123456789abcdef0 0123456789abcdef"},
	{name: "vbin8 empty", v: []byte{}, hex: "a0 00"},
	{name: "vbin8", v: []byte{1, 2, 3}, hex: "a0 03 010203"},
	{name: "vbin8 255", v: bytes.Repeat([]byte{0xaa}, 255), hex: "a0 ff" + rep("aa", 255)},
	{name: "vbin32 256", v: bytes.Repeat([]byte{0xaa}, 256), hex: "b0 00000100" + rep("aa", 256)},
	{name: "str8 empty", v: "", hex: "a1 00"},
	{name: "str8 utf8", v: "héllo", hex: "a1 06 68c3a96c6c6f"},
	{name: "str8 255", v: strings.Repeat("x", 255), hex: "a1 ff" + rep("78", 255)},
	{name: "str32 256", v: strings.Repeat("x", 256), hex: "b1 00000100" + rep("78", 256)},
	{name: "sym8 empty", v: Symbol(""), hex: "a3 00"},
	{name: "sym8", v: Symbol("amqp:open:list"), hex: "a3 0e 616d71703a6f70656e3a6c697374"},
	{name: "sym32 256", v: Symbol(strings.Repeat("s", 256)), hex: "b3 00000100" + rep("73", 256)},
	{name: "list0", v: []any{}, hex: "45"},
	{name: "list8", v: []any{uint32(1), "a"}, hex: "c0 06 02 5201 a10161"},
	{name: "list8 nested", v: []any{[]any{}, []any{nil}}, hex: "c0 06 02 45 c00201 40"},
	{name: "list8 largest", v: []any{bytes.Repeat([]byte{0xaa}, 252)}, hex: "c0 ff 01 a0fc" + rep("aa", 252)},
	{name: "list32 by size", v: []any{bytes.Repeat([]byte{0xaa}, 253)}, hex: "d0 00000103 00000001 a0fd" + rep("aa", 253)},
	{name: "list32 by count", v: repeatAny(nil, 256), hex: "d0 00000104 00000100" + rep("40", 256)},
	{name: "map8 empty", v: &Map{Entries: []MapEntry{}}, hex: "c1 01 00"},
	{name: "map8", v: &Map{Entries: []MapEntry{{Symbol("k"), int32(1)}}}, hex: "c1 06 02 a3016b 5401"},
	{name: "map8 keeps order and odd keys", v: &Map{Entries: []MapEntry{{"z", nil}, {[]byte{1}, []any{}}, {uint64(0), true}}},
		hex: "c1 0b 06 a1017a 40 a00101 45 44 41"},
	{name: "map32 by size", v: &Map{Entries: []MapEntry{{Symbol("k"), strings.Repeat("x", 300)}}},
		hex: "d1 00000138 00000002 a3016b b10000012c" + rep("78", 300)},
	{name: "map32 by count", v: &Map{Entries: func() []MapEntry {
		e := make([]MapEntry, 128)
		return e
	}()}, hex: "d1 00000104 00000100" + rep("40", 256)},
	{name: "array8 empty", v: &Array{Code: TypeSym8, Values: []any{}}, hex: "e0 02 00 a3"},
	{name: "array8 empty uint", v: &Array{Code: TypeUint, Values: []any{}}, hex: "e0 02 00 70"},
	{name: "array8 sym", v: &Array{Code: TypeSym8, Values: []any{Symbol("a"), Symbol("bc")}}, hex: "e0 07 02 a3 0161 026263"},
	{name: "array8 str", v: &Array{Code: TypeStr8, Values: []any{"", "é"}}, hex: "e0 06 02 a1 00 02c3a9"},
	{name: "array8 vbin", v: &Array{Code: TypeVbin8, Values: []any{[]byte{9}}}, hex: "e0 04 01 a0 0109"},
	{name: "array8 booleans", v: &Array{Code: TypeBoolean, Values: []any{true, false}}, hex: "e0 04 02 56 01 00"},
	{name: "array8 nulls", v: &Array{Code: TypeNull, Values: []any{nil, nil}}, hex: "e0 02 02 40"},
	{name: "array8 ubyte", v: &Array{Code: TypeUbyte, Values: []any{uint8(1), uint8(2)}}, hex: "e0 04 02 50 0102"},
	{name: "array8 byte", v: &Array{Code: TypeByte, Values: []any{int8(-1)}}, hex: "e0 03 01 51 ff"},
	{name: "array8 ushort", v: &Array{Code: TypeUshort, Values: []any{uint16(0x102)}}, hex: "e0 04 01 60 0102"},
	{name: "array8 short", v: &Array{Code: TypeShort, Values: []any{int16(-1)}}, hex: "e0 04 01 61 ffff"},
	{name: "array8 uint", v: &Array{Code: TypeUint, Values: []any{uint32(1), uint32(0x10000)}}, hex: "e0 0a 02 70 00000001 00010000"},
	{name: "array8 int", v: &Array{Code: TypeInt, Values: []any{int32(1), int32(-1)}}, hex: "e0 0a 02 71 00000001 ffffffff"},
	{name: "array8 ulong", v: &Array{Code: TypeUlong, Values: []any{uint64(7)}}, hex: "e0 0a 01 80 0000000000000007"},
	{name: "array8 long", v: &Array{Code: TypeLong, Values: []any{int64(-7)}}, hex: "e0 0a 01 81 fffffffffffffff9"},
	{name: "array8 float", v: &Array{Code: TypeFloat, Values: []any{float32(1.5)}}, hex: "e0 06 01 72 3fc00000"},
	{name: "array8 double", v: &Array{Code: TypeDouble, Values: []any{1.5}}, hex: "e0 0a 01 82 3ff8000000000000"},
	{name: "array8 char", v: &Array{Code: TypeChar, Values: []any{Char('a')}}, hex: "e0 06 01 73 00000061"},
	{name: "array8 timestamp", v: &Array{Code: TypeTimestamp, Values: []any{Milliseconds(1), Milliseconds(-1)}},
		hex: "e0 12 02 83 0000000000000001 ffffffffffffffff"},
	{name: "array8 uuid", v: &Array{Code: TypeUUID, Values: []any{uuidFixture}}, hex: "e0 12 01 98 123456789abcdef00123456789abcdef"},
	{name: "array8 decimal32", v: &Array{Code: TypeDecimal32, Values: []any{Decimal32{1, 2, 3, 4}}}, hex: "e0 06 01 74 01020304"},
	{name: "array8 decimal64", v: &Array{Code: TypeDecimal64, Values: []any{Decimal64{1}}}, hex: "e0 0a 01 84 0100000000000000"},
	{name: "array8 decimal128", v: &Array{Code: TypeDecimal128, Values: []any{Decimal128{1}}}, hex: "e0 12 01 94 01000000000000000000000000000000"},
	{name: "array32 by size", v: &Array{Code: TypeUbyte, Values: repeatAny(uint8(7), 300)}, hex: "f0 00000131 0000012c 50" + rep("07", 300)},
	{name: "array32 of str32", v: &Array{Code: TypeStr8, Values: []any{"a", strings.Repeat("x", 256)}},
		hex:  "f0 0000010e 00000002 b1 00000001 61 00000100" + rep("78", 256),
		back: &Array{Code: TypeStr32, Values: []any{"a", strings.Repeat("x", 256)}}, hasBack: true},
	{name: "array of described, symbol descriptor", v: &Array{Descriptor: Symbol("x:y"), Code: TypeStr8, Values: []any{"a"}},
		hex: "e0 0a 01 00 a303783a79 a1 0161"},
	{name: "array of described, ulong descriptor", v: &Array{Descriptor: uint64(0x1234), Code: TypeUint, Values: []any{uint32(1)}},
		hex: "e0 10 01 00 800000000000001234 70 00000001"},
	{name: "array of lists", v: &Array{Code: TypeList32, Values: []any{[]any{}, []any{true}}},
		hex: "e0 13 02 d0 0000000400000000 000000050000000141"},
	{name: "array of maps", v: &Array{Code: TypeMap32, Values: []any{&Map{Entries: []MapEntry{{"a", nil}}}}},
		hex: "e0 0e 01 d1 00000008 00000002 a10161 40"},
	{name: "array of arrays", v: &Array{Code: TypeArray32, Values: []any{&Array{Code: TypeUbyte, Values: []any{uint8(1)}}}},
		hex: "e0 0c 01 f0 00000006 00000001 50 01"},
	{name: "described ulong0", v: &Described{Descriptor: uint64(0), Value: true}, hex: "00 44 41"},
	{name: "described smallulong", v: &Described{Descriptor: uint64(0xfe), Value: nil}, hex: "00 53fe 40"},
	{name: "described ulong", v: &Described{Descriptor: uint64(0x77777), Value: "x"}, hex: "00 800000000000077777 a10178"},
	{name: "described symbol", v: &Described{Descriptor: Symbol("apache.org:selector-filter:string"), Value: "a = 1"},
		hex: "00 a321 6170616368652e6f72673a73656c6563746f722d66696c7465723a737472696e67 a105 61203d2031"},
	{name: "described in list", v: []any{&Described{Descriptor: uint64(0x99), Value: []any{}}}, hex: "c0 05 01 00 5399 45"},
	{name: "composite in list", v: []any{&Released{}}, hex: "c0 05 01 00 5326 45"},
}

func TestAppendAnyExactBytes(t *testing.T) {
	for _, c := range primitiveCases {
		t.Run(c.name, func(t *testing.T) {
			want := hx(c.hex)
			prefix := []byte{0xde, 0xad}
			got, err := AppendAny(append([]byte{}, prefix...), c.v)
			if err != nil {
				t.Fatalf("AppendAny: %v", err)
			}
			if !bytes.Equal(got[:2], prefix) {
				t.Fatalf("AppendAny overwrote the bytes before it: % x", got[:2])
			}
			if !bytes.Equal(got[2:], want) {
				t.Fatalf("AppendAny(%#v)\n got % x\nwant % x", c.v, got[2:], want)
			}
		})
	}
}

func TestReadAnyRoundTrip(t *testing.T) {
	for _, c := range primitiveCases {
		t.Run(c.name, func(t *testing.T) {
			in := append(hx(c.hex), 0x99) // a trailing byte that must not be consumed
			d := NewDecoder(in)
			got, err := d.ReadAny()
			if err != nil {
				t.Fatalf("ReadAny(% x): %v", in, err)
			}
			want := c.v
			if c.hasBack {
				want = c.back
			}
			if !equalStrict(got, want) {
				t.Fatalf("ReadAny(% x)\n got %#v\nwant %#v", in, got, want)
			}
			if d.Len() != 1 || d.Offset() != len(in)-1 {
				t.Fatalf("ReadAny consumed %d of %d bytes", d.Offset(), len(in)-1)
			}
			// Skip must agree on the length.
			d.Reset(in)
			if err := d.Skip(); err != nil || d.Offset() != len(in)-1 {
				t.Fatalf("Skip: offset %d err %v, want %d", d.Offset(), err, len(in)-1)
			}
		})
	}
}

func TestTypedAppenders(t *testing.T) {
	cases := []struct {
		name string
		got  []byte
		hex  string
	}{
		{"AppendNull", AppendNull(nil), "40"},
		{"AppendBool", AppendBool(nil, true), "41"},
		{"AppendUbyte", AppendUbyte(nil, 1), "50 01"},
		{"AppendUshort", AppendUshort(nil, 1), "60 0001"},
		{"AppendUint 0", AppendUint(nil, 0), "43"},
		{"AppendUint 7", AppendUint(nil, 7), "52 07"},
		{"AppendUlong 0", AppendUlong(nil, 0), "44"},
		{"AppendByte", AppendByte(nil, -128), "51 80"},
		{"AppendShort", AppendShort(nil, 256), "61 0100"},
		{"AppendInt", AppendInt(nil, -1), "54 ff"},
		{"AppendLong", AppendLong(nil, 1<<40), "81 0000010000000000"},
		{"AppendFloat", AppendFloat(nil, 0), "72 00000000"},
		{"AppendDouble", AppendDouble(nil, -2), "82 c000000000000000"},
		{"AppendChar", AppendChar(nil, 'Z'), "73 0000005a"},
		{"AppendTimestamp", AppendTimestamp(nil, time.Unix(1, 500_000_000)), "83 00000000000005dc"},
		{"AppendTimestamp truncates to ms", AppendTimestamp(nil, time.Unix(0, 1_999_999)), "83 0000000000000001"},
		{"AppendUUID", AppendUUID(nil, UUID{15: 1}), "98 00000000000000000000000000000001"},
		{"AppendBinary nil", AppendBinary(nil, nil), "a0 00"},
		{"AppendString", AppendString(nil, "ab"), "a1 02 6162"},
		{"AppendSymbol", AppendSymbol(nil, "ab"), "a3 02 6162"},
		{"AppendDescriptor 0x10", AppendDescriptor(nil, DescriptorOpen), "00 53 10"},
		{"AppendDescriptor 0", AppendDescriptor(nil, 0), "00 44"},
		{"AppendDescriptor wide", AppendDescriptor(nil, 0x0000468C00000001), "00 80 0000468c00000001"},
		{"AppendSymbolArray nil", AppendSymbolArray(nil, nil), "40"},
		{"AppendSymbolArray empty", AppendSymbolArray(nil, []Symbol{}), "e0 02 00 a3"},
		{"AppendSymbolArray", AppendSymbolArray(nil, []Symbol{"a", "b"}), "e0 06 02 a3 0161 0162"},
		{"AppendSymbolArray sym32", AppendSymbolArray(nil, []Symbol{"a", Symbol(strings.Repeat("s", 256))}),
			"f0 0000010e 00000002 b3 00000001 61 00000100" + rep("73", 256)},
		{"ListStart/ListEnd empty", func() []byte { b, off := ListStart([]byte{1}); return ListEnd(b, off, 0) }(), "01 45"},
		{"ListStart/ListEnd", func() []byte {
			b, off := ListStart(nil)
			b = AppendNull(AppendUint(b, 300))
			return ListEnd(b, off, 2)
		}(), "c0 07 02 70 0000012c 40"},
	}
	for _, c := range cases {
		if want := hx(c.hex); !bytes.Equal(c.got, want) {
			t.Errorf("%s\n got % x\nwant % x", c.name, c.got, want)
		}
	}
}

// TestAppendAnyGoTypes covers Go types that AppendAny accepts but ReadAny returns as
// another type.
func TestAppendAnyGoTypes(t *testing.T) {
	cases := []struct {
		name string
		v    any
		hex  string
		back any
	}{
		{"int is long", int(-1), "55 ff", int64(-1)},
		{"uint is ulong", uint(300), "80 000000000000012c", uint64(300)},
		{"nil []byte is null", []byte(nil), "40", nil},
		{"nil []any is null", []any(nil), "40", nil},
		{"nil *Map is null", (*Map)(nil), "40", nil},
		{"nil *Array is null", (*Array)(nil), "40", nil},
		{"nil *Described is null", (*Described)(nil), "40", nil},
		{"nil Fields is null", Fields(nil), "40", nil},
		{"nil Annotations is null", Annotations(nil), "40", nil},
		{"nil map[string]any is null", map[string]any(nil), "40", nil},
		{"[]Symbol", []Symbol{"x"}, "e0 04 01 a3 0178", &Array{Code: TypeSym8, Values: []any{Symbol("x")}}},
		{"map[string]any sorted", map[string]any{"b": true, "a": int64(1)}, "c1 0a 04 a10161 5501 a10162 41",
			&Map{Entries: []MapEntry{{"a", int64(1)}, {"b", true}}}},
		{"Fields sorted", Fields{"b": nil, "a": nil}, "c1 09 04 a30161 40 a30162 40",
			&Map{Entries: []MapEntry{{Symbol("a"), nil}, {Symbol("b"), nil}}}},
		{"Annotations numbers first", Annotations{Symbol("x"): nil, uint64(300): nil, uint64(2): nil},
			"c1 12 06 5302 40 80000000000000012c 40 a30178 40",
			&Map{Entries: []MapEntry{{uint64(2), nil}, {uint64(300), nil}, {Symbol("x"), nil}}}},
		{"small uint array widened", &Array{Code: TypeSmallUint, Values: []any{uint32(1)}}, "e0 06 01 70 00000001",
			&Array{Code: TypeUint, Values: []any{uint32(1)}}},
		{"true array is boolean", &Array{Code: TypeTrue, Values: []any{true}}, "e0 03 01 56 01",
			&Array{Code: TypeBoolean, Values: []any{true}}},
		{"list8 array is list32", &Array{Code: TypeList8, Values: []any{[]any{}}}, "e0 0a 01 d0 00000004 00000000",
			&Array{Code: TypeList32, Values: []any{[]any{}}}},
	}
	for _, c := range cases {
		got, err := AppendAny(nil, c.v)
		if err != nil {
			t.Errorf("%s: AppendAny: %v", c.name, err)
			continue
		}
		if want := hx(c.hex); !bytes.Equal(got, want) {
			t.Errorf("%s\n got % x\nwant % x", c.name, got, want)
			continue
		}
		back, err := NewDecoder(got).ReadAny()
		if err != nil || !equalStrict(back, c.back) {
			t.Errorf("%s: ReadAny = %#v, %v; want %#v", c.name, back, err, c.back)
		}
	}
}

func TestAppendAnyErrors(t *testing.T) {
	deep := any(nil)
	for range MaxDepth + 2 {
		deep = []any{deep}
	}
	cases := []struct {
		name string
		v    any
	}{
		{"struct", struct{}{}},
		{"chan", make(chan int)},
		{"map[int]int", map[int]int{}},
		{"invalid UTF-8 string", "\xff"},
		{"invalid UTF-8 in list", []any{"ok", "\xc3\x28"}},
		{"invalid UTF-8 map key", map[string]any{"\xff": nil}},
		{"invalid UTF-8 array element", &Array{Code: TypeStr8, Values: []any{"\xff"}}},
		{"annotation key of wrong type", Annotations{"a string": nil}},
		{"unsupported value in map", &Map{Entries: []MapEntry{{"k", struct{}{}}}}},
		{"unsupported value in Fields", Fields{"k": 1i}},
		{"array element of wrong type", &Array{Code: TypeUint, Values: []any{uint64(1)}}},
		{"array element nil in uint array", &Array{Code: TypeUint, Values: []any{nil}}},
		{"array of lists holding a map", &Array{Code: TypeList32, Values: []any{&Map{}}}},
		{"array of lists holding nil", &Array{Code: TypeList32, Values: []any{[]any(nil)}}},
		{"array with unknown code", &Array{Code: 0xff, Values: []any{1}}},
		{"described with bad value", &Described{Descriptor: uint64(1), Value: struct{}{}}},
		{"nesting beyond MaxDepth", deep},
	}
	for _, c := range cases {
		if _, err := AppendAny(nil, c.v); err == nil {
			t.Errorf("%s: AppendAny(%T) succeeded, want an error", c.name, c.v)
		}
	}
}

// TestAppendAnyMaxDepth checks that the encoder accepts what the decoder accepts at
// the nesting limit.
func TestAppendAnyMaxDepth(t *testing.T) {
	v := any(nil)
	for range MaxDepth {
		v = []any{v}
	}
	b, err := AppendAny(nil, v)
	if err != nil {
		t.Fatalf("AppendAny at MaxDepth: %v", err)
	}
	back, err := NewDecoder(b).ReadAny()
	if err != nil || !equalStrict(back, v) {
		t.Fatalf("ReadAny at MaxDepth: %v", err)
	}

	// One more level: the encoder must refuse what the decoder would refuse, even
	// when the innermost list is empty.
	over := []any{}
	for range MaxDepth {
		over = []any{over}
	}
	if b, err := AppendAny(nil, over); err == nil {
		_, derr := NewDecoder(b).ReadAny()
		t.Fatalf("AppendAny encoded %d nested lists (decoder says %v)", MaxDepth+1, derr)
	}
	b, _ = AppendAny(nil, v)
	wrapped := append([]byte{0xd0, 0, 0, 0, 0, 0, 0, 0, 1}, b...)
	wrapped[4] = byte(len(b) + 4)
	wrapped[3] = byte((len(b) + 4) >> 8)
	_, err = NewDecoder(wrapped).ReadAny()
	requireMalformed(t, err, "MaxDepth+1 nested lists")
}
