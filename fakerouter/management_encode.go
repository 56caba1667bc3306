package fakerouter

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// The management agent writes its responses as qdrouterd composes them (qd_compose):
// lists and maps always in their 32-bit forms, integers in the smallest form qdrouterd
// uses, so that a response is the same bytes as the real router's, not only the same
// values. Go types stand for qdrouterd's compose calls:
//
//	nil            null            bool        boolean
//	uint32         uint            uint64      ulong
//	int32          int             int64       long
//	int            a Python int: int when it fits, else long (the Python agent's)
//	string         str8/str32      wire.Symbol sym8/sym32
//	[]any          list32, or list0 when empty and written for the Python agent
//	emptyList      list0           *wire.Map   map32 (ordered)
//	[]byte         vbin8/vbin32    float64     double
//	wire.UUID      uuid            time.Time   timestamp
type composer struct {
	// python makes empty lists list0, as the Python agent's values are converted
	// (qd_py_to_composed); the C agent's start_list/end_list pairs are always list32.
	python bool
}

// emptyList is the empty list qdrouterd writes with qd_compose_empty_list.
type emptyList struct{}

func (c composer) append(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, wire.TypeNull)
	case bool:
		if v {
			return append(b, wire.TypeTrue)
		}
		return append(b, wire.TypeFalse)
	case uint32:
		switch {
		case v == 0:
			return append(b, wire.TypeUint0)
		case v < 256:
			return append(b, wire.TypeSmallUint, byte(v))
		}
		return binary.BigEndian.AppendUint32(append(b, wire.TypeUint), v)
	case uint64:
		switch {
		case v == 0:
			return append(b, wire.TypeUlong0)
		case v < 256:
			return append(b, wire.TypeSmallUlong, byte(v))
		}
		return binary.BigEndian.AppendUint64(append(b, wire.TypeUlong), v)
	case int32:
		if v >= -128 && v <= 127 {
			return append(b, wire.TypeSmallInt, byte(int8(v)))
		}
		return binary.BigEndian.AppendUint32(append(b, wire.TypeInt), uint32(v))
	case int64:
		if v >= -128 && v <= 127 {
			return append(b, wire.TypeSmallLong, byte(int8(v)))
		}
		return binary.BigEndian.AppendUint64(append(b, wire.TypeLong), uint64(v))
	case int:
		if v >= math.MinInt32 && v <= math.MaxInt32 {
			return c.append(b, int32(v))
		}
		return c.append(b, int64(v))
	case float64:
		return binary.BigEndian.AppendUint64(append(b, wire.TypeDouble), math.Float64bits(v))
	case string:
		return appendVar(b, wire.TypeStr8, wire.TypeStr32, []byte(v))
	case wire.Symbol:
		return appendVar(b, wire.TypeSym8, wire.TypeSym32, []byte(v))
	case []byte:
		return appendVar(b, wire.TypeVbin8, wire.TypeVbin32, v)
	case wire.UUID:
		return append(append(b, wire.TypeUUID), v[:]...)
	case time.Time:
		return binary.BigEndian.AppendUint64(append(b, wire.TypeTimestamp), uint64(v.UnixMilli()))
	case emptyList:
		return append(b, wire.TypeList0)
	case []any:
		if len(v) == 0 && c.python {
			return append(b, wire.TypeList0)
		}
		b, off := start32(b, wire.TypeList32)
		for _, e := range v {
			b = c.append(b, e)
		}
		return end32(b, off, len(v))
	case *wire.Map:
		b, off := start32(b, wire.TypeMap32)
		for _, e := range v.Entries {
			b = c.append(c.append(b, e.Key), e.Value)
		}
		return end32(b, off, 2*len(v.Entries))
	}
	// Values the agent never builds; written the codec's way rather than lost.
	out, err := wire.AppendAny(b, v)
	if err != nil {
		return append(b, wire.TypeNull)
	}
	return out
}

func appendVar(b []byte, small, large byte, v []byte) []byte {
	if len(v) < 256 {
		b = append(b, small, byte(len(v)))
	} else {
		b = binary.BigEndian.AppendUint32(append(b, large), uint32(len(v)))
	}
	return append(b, v...)
}

// start32 opens a list32 or map32; end32 fills in its size and count.
func start32(b []byte, code byte) ([]byte, int) {
	b = append(b, code, 0, 0, 0, 0, 0, 0, 0, 0)
	return b, len(b) - 8
}

func end32(b []byte, off, count int) []byte {
	binary.BigEndian.PutUint32(b[off:], uint32(len(b)-off-4))
	binary.BigEndian.PutUint32(b[off+4:], uint32(count))
	return b
}

// pairs builds an ordered map from alternating keys and values.
func pairs(kv ...any) *wire.Map {
	m := &wire.Map{Entries: make([]wire.MapEntry, 0, len(kv)/2)}
	for i := 0; i+1 < len(kv); i += 2 {
		m.Entries = append(m.Entries, wire.MapEntry{Key: kv[i], Value: kv[i+1]})
	}
	return m
}

// pyRepr writes v as Python's repr() writes the value the Python agent decoded: the
// agent quotes requests and names in some of its error descriptions.
func pyRepr(v any) string {
	var sb strings.Builder
	writePyRepr(&sb, v)
	return sb.String()
}

func writePyRepr(sb *strings.Builder, v any) {
	switch v := v.(type) {
	case nil:
		sb.WriteString("None")
	case bool:
		if v {
			sb.WriteString("True")
		} else {
			sb.WriteString("False")
		}
	case string:
		sb.WriteString(pyQuote(v))
	case wire.Symbol:
		sb.WriteString(pyQuote(string(v)))
	case []byte:
		sb.WriteString("b" + pyQuote(string(v)))
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		fmt.Fprintf(sb, "%d", v)
	case float32:
		sb.WriteString(pyFloat(float64(v)))
	case float64:
		sb.WriteString(pyFloat(v))
	case wire.UUID:
		sb.WriteString("UUID('" + v.String() + "')")
	case []any:
		sb.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				sb.WriteString(", ")
			}
			writePyRepr(sb, e)
		}
		sb.WriteByte(']')
	case []string:
		sb.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(pyQuote(e))
		}
		sb.WriteByte(']')
	case *wire.Map:
		sb.WriteByte('{')
		if v != nil {
			for i, e := range v.Entries {
				if i > 0 {
					sb.WriteString(", ")
				}
				writePyRepr(sb, e.Key)
				sb.WriteString(": ")
				writePyRepr(sb, e.Value)
			}
		}
		sb.WriteByte('}')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		sb.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(pyQuote(k) + ": ")
			writePyRepr(sb, v[k])
		}
		sb.WriteByte('}')
	default:
		fmt.Fprintf(sb, "%v", v)
	}
}

func pyFloat(f float64) string {
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eEn") {
		s += ".0"
	}
	return s
}

// pyQuote quotes s as Python's repr quotes a str: single quotes unless s holds a single
// quote and no double quote.
func pyQuote(s string) string {
	q := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		q = '"'
	}
	var sb strings.Builder
	sb.WriteByte(q)
	for _, r := range s {
		switch {
		case r == rune(q) || r == '\\':
			sb.WriteByte('\\')
			sb.WriteRune(r)
		case r == '\n':
			sb.WriteString(`\n`)
		case r == '\r':
			sb.WriteString(`\r`)
		case r == '\t':
			sb.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&sb, `\x%02x`, r)
		case r == utf8.RuneError:
			sb.WriteString(`\ufffd`)
		default:
			sb.WriteRune(r)
		}
	}
	sb.WriteByte(q)
	return sb.String()
}

// pyTypeName is the name of the Python type the agent would have decoded v into, for
// its "'X' object has no attribute" errors.
func pyTypeName(v any) string {
	switch v.(type) {
	case nil:
		return "NoneType"
	case bool:
		return "bool"
	case string:
		return "str"
	case wire.Symbol:
		return "symbol"
	case []byte:
		return "bytes"
	case []any:
		return "list"
	case *wire.Map:
		return "dict"
	case float32, float64:
		return "float"
	case wire.UUID:
		return "UUID"
	case int32:
		return "int32"
	case uint32:
		return "uint"
	case uint64:
		return "ulong"
	case int8:
		return "byte"
	case uint8:
		return "ubyte"
	case int16:
		return "short"
	case uint16:
		return "ushort"
	}
	return "int"
}
