package wire

import (
	"encoding/hex"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

// hx decodes hexadecimal written with optional spaces, for readable expected bytes.
func hx(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic("bad hex in test: " + s)
	}
	return b
}

// cat concatenates byte slices.
func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// rep returns s repeated n times.
func rep(s string, n int) string { return strings.Repeat(s, n) }

// requireMalformed fails unless err wraps ErrMalformed.
func requireMalformed(t testing.TB, err error, what string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: decoded without error, want ErrMalformed", what)
	}
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("%s: error %q does not wrap ErrMalformed", what, err)
	}
	t.Logf("MALFORMED %-50s %v", what, err)
}

// equalAMQP is reflect.DeepEqual with two differences that AMQP values need: floats
// are compared by their bits (so NaN equals the same NaN), and, unless strictArray is
// set, the Code of an *Array is compared by type family (str8 and str32, smalluint and
// uint, list8 and list32, ...), since the encoder picks the width itself.
func equalAMQP(a, b any) bool { return eqValue(reflect.ValueOf(a), reflect.ValueOf(b), false) }

// equalStrict is equalAMQP with Array codes compared exactly.
func equalStrict(a, b any) bool { return eqValue(reflect.ValueOf(a), reflect.ValueOf(b), true) }

var arrayPtrType = reflect.TypeFor[*Array]()

func eqValue(a, b reflect.Value, strictArray bool) bool {
	if !a.IsValid() || !b.IsValid() {
		return a.IsValid() == b.IsValid()
	}
	if a.Type() != b.Type() {
		return false
	}
	switch a.Kind() {
	case reflect.Float32:
		if a.CanInterface() && b.CanInterface() {
			x, xok := a.Interface().(float32)
			y, yok := b.Interface().(float32)
			if xok && yok {
				return math.Float32bits(x) == math.Float32bits(y)
			}
		}
		return math.Float64bits(a.Float()) == math.Float64bits(b.Float())
	case reflect.Float64:
		return math.Float64bits(a.Float()) == math.Float64bits(b.Float())
	case reflect.Bool:
		return a.Bool() == b.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return a.Int() == b.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return a.Uint() == b.Uint()
	case reflect.String:
		return a.String() == b.String()
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		if a.Pointer() == b.Pointer() {
			return true
		}
		if a.Type() == arrayPtrType && a.CanInterface() {
			x, y := a.Interface().(*Array), b.Interface().(*Array)
			codeOK := x.Code == y.Code || (!strictArray && arrayFamily(x.Code) == arrayFamily(y.Code))
			return codeOK && equalWith(x.Descriptor, y.Descriptor, strictArray) &&
				equalWith(x.Values, y.Values, strictArray)
		}
		return eqValue(a.Elem(), b.Elem(), strictArray)
	case reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return eqValue(a.Elem(), b.Elem(), strictArray)
	case reflect.Slice:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return false
		}
		fallthrough
	case reflect.Array:
		for i := range a.Len() {
			if !eqValue(a.Index(i), b.Index(i), strictArray) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return false
		}
		it := a.MapRange()
		for it.Next() {
			bv := b.MapIndex(it.Key())
			if !bv.IsValid() || !eqValue(it.Value(), bv, strictArray) {
				return false
			}
		}
		return true
	case reflect.Struct:
		for i := range a.NumField() {
			if !eqValue(a.Field(i), b.Field(i), strictArray) {
				return false
			}
		}
		return true
	case reflect.Func:
		return a.IsNil() && b.IsNil()
	}
	panic("equalAMQP: unhandled kind " + a.Kind().String())
}

func equalWith(a, b any, strict bool) bool {
	return eqValue(reflect.ValueOf(a), reflect.ValueOf(b), strict)
}

// arrayFamily maps an element constructor to one code per AMQP type.
func arrayFamily(c byte) byte {
	switch c {
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
		return TypeVbin32
	case TypeStr8, TypeStr32:
		return TypeStr32
	case TypeSym8, TypeSym32:
		return TypeSym32
	case TypeList0, TypeList8, TypeList32:
		return TypeList32
	case TypeMap8, TypeMap32:
		return TypeMap32
	case TypeArray8, TypeArray32:
		return TypeArray32
	}
	return c
}

func TestEqualAMQPCanFail(t *testing.T) {
	// The comparison the round-trip tests rely on must tell these apart.
	differ := [][2]any{
		{uint32(1), uint64(1)},
		{[]byte{}, []byte(nil)},
		{[]any{}, []any(nil)},
		{math.NaN(), math.Float64frombits(0x7ff8000000000002)},
		{&Array{Code: TypeUint, Values: []any{uint32(1)}}, &Array{Code: TypeUlong, Values: []any{uint32(1)}}},
		{&Open{ContainerID: "a"}, &Open{ContainerID: "b"}},
		{Fields{"a": nil}, Fields{"b": nil}},
		{&Map{Entries: []MapEntry{{"a", 1}, {"b", 2}}}, &Map{Entries: []MapEntry{{"b", 2}, {"a", 1}}}},
		{Milliseconds(1), Milliseconds(2)},
	}
	for _, d := range differ {
		if equalAMQP(d[0], d[1]) {
			t.Errorf("equalAMQP(%#v, %#v) = true", d[0], d[1])
		}
	}
	same := [][2]any{
		{math.NaN(), math.NaN()},
		{&Array{Code: TypeSym8, Values: []any{Symbol("a")}}, &Array{Code: TypeSym32, Values: []any{Symbol("a")}}},
		{Milliseconds(5), Milliseconds(5)},
	}
	for _, s := range same {
		if !equalAMQP(s[0], s[1]) {
			t.Errorf("equalAMQP(%#v, %#v) = false", s[0], s[1])
		}
	}
	if equalStrict(same[1][0], same[1][1]) {
		t.Error("equalStrict ignores Array.Code")
	}
}
