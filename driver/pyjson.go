package driver

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// pyJSON encodes v the way Python's json.dumps does by default: ASCII only (non-ASCII
// as \uXXXX, astral characters as surrogate pairs, DEL and control characters
// escaped), separators ", " and ": ", no HTML escaping. Readers accept any JSON, but
// matching Python keeps traces comparable. Map keys are sorted (Go maps have no
// order; orderedMap keeps its own). The common types are written directly; others go
// through encoding/json (their MarshalJSON and struct tags apply) and are reformatted.
// Numbers are written as encoding/json writes them.
func pyJSON(v any) (string, error) {
	return pooledPyJSON(func(b []byte) ([]byte, error) { return appendPyJSON(b, v) })
}

// pooledPyJSON returns the text that write appends to an empty buffer, which comes
// from pyJSONBufs and goes back there.
func pooledPyJSON(write func(b []byte) ([]byte, error)) (string, error) {
	bp := pyJSONBufs.Get().(*[]byte)
	b, err := write((*bp)[:0])
	var s string
	if err == nil {
		s = string(b)
		if cap(b) <= maxPooledPyJSON {
			*bp = b
		}
	}
	pyJSONBufs.Put(bp)
	return s, err
}

// pyJSONBufs holds pyJSON's scratch buffers (*[]byte): a body is written into one,
// then copied into its string, instead of growing a new slice several times for each
// message. Buffers larger than maxPooledPyJSON are left to the garbage collector.
var pyJSONBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

const maxPooledPyJSON = 64 << 10

// kv and orderedMap encode JSON objects with their keys in a fixed order.
type kv struct {
	k string
	v any
}

type orderedMap []kv

// MarshalJSON writes the pairs in order, in Python's format.
func (m orderedMap) MarshalJSON() ([]byte, error) { return appendPyJSON(nil, m) }

func appendPyJSON(b []byte, v any) ([]byte, error) {
	var err error
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendPyString(b, x), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case int32:
		return strconv.AppendInt(b, int64(x), 10), nil
	case uint:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case uint64:
		return strconv.AppendUint(b, x, 10), nil
	case uint32:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case float64:
		return appendFloat(b, x, 64)
	case float32:
		return appendFloat(b, float64(x), 32)
	case json.RawMessage:
		if x == nil {
			return append(b, "null"...), nil
		}
		return appendPyRaw(b, x)
	case orderedMap:
		b = append(b, '{')
		for i, p := range x {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = appendPyString(b, p.k)
			b = append(b, ": "...)
			if b, err = appendPyJSON(b, p.v); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case map[string]any:
		if x == nil {
			return append(b, "null"...), nil
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = appendPyString(b, k)
			b = append(b, ": "...)
			if b, err = appendPyJSON(b, x[k]); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case []any:
		if x == nil {
			return append(b, "null"...), nil
		}
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ", "...)
			}
			if b, err = appendPyJSON(b, e); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case []string:
		if x == nil {
			return append(b, "null"...), nil
		}
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = appendPyString(b, e)
		}
		return append(b, ']'), nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return appendPyRaw(b, raw)
}

// appendFloat writes f as encoding/json does; NaN and infinities are refused, as
// there.
func appendFloat(b []byte, f float64, bits int) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("json: unsupported value: %v", f)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	b = strconv.AppendFloat(b, f, format, -1, bits)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

const hexDigits = "0123456789abcdef"

// appendPyString writes s as a JSON string the way Python's json.dumps does with
// ensure_ascii: printable ASCII as it is, \" \\ \n \r \t \b \f, any other character
// as \u00XX / \uXXXX (astral ones as a surrogate pair). Invalid UTF-8 becomes U+FFFD.
func appendPyString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			i++
			continue
		}
		b = append(b, s[start:i]...)
		if c < utf8.RuneSelf {
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = appendU(b, rune(c))
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r >= 0x10000 {
			r1, r2 := utf16.EncodeRune(r)
			b = appendU(appendU(b, r1), r2)
		} else {
			b = appendU(b, r) // RuneError for invalid UTF-8 too
		}
		i += n
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func appendU(b []byte, r rune) []byte {
	return append(b, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}

// appendPyRaw writes the JSON text raw in Python's format: without white space
// except after separators, strings re-encoded by appendPyString (as they are when
// plain), numbers and literals as they are. raw must be valid as json.Valid has it.
func appendPyRaw(b []byte, raw []byte) ([]byte, error) {
	r := getJSONReader(raw)
	defer putJSONReader(r)
	d := &r.d
	for {
		k := d.PeekKind()
		if n := d.StackDepth(); n > 0 && k != '}' && k != ']' {
			if kind, length := d.StackIndex(n); length > 0 {
				if kind == '{' && length%2 == 1 {
					b = append(b, ": "...)
				} else {
					b = append(b, ", "...)
				}
			}
		}
		switch k {
		case '{', '}', '[', ']':
			if _, err := d.ReadToken(); err != nil {
				return nil, invalidJSON(raw)
			}
			b = append(b, byte(k))
		default: // 0 (an error) too: ReadValue reports it
			v, ok := r.value()
			if !ok {
				return nil, invalidJSON(raw)
			}
			if k != '"' || isPlain(v) {
				b = append(b, v...)
			} else {
				s, _ := jsontext.AppendUnquote(nil, v) // invalid UTF-8 and lone surrogates as U+FFFD
				b = appendPyString(b, string(s))
			}
		}
		if d.StackDepth() == 0 {
			break
		}
	}
	if !r.atEOF() {
		return nil, invalidJSON(raw)
	}
	return b, nil
}

func invalidJSON(raw []byte) error { return fmt.Errorf("json: invalid JSON text %.40q", raw) }
