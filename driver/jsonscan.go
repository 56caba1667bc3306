package driver

// A small JSON scanner for the hot path of a call: the request and reply bodies are
// validated and split into their members in one pass each, where encoding/json's
// Unmarshal scans every byte twice (checkValid, then the decoding) and did so once
// for the body and once more for the request inside it. It accepts exactly what
// json.Valid accepts (FuzzValidJSON checks it): RFC 8259 text, strings holding any
// bytes but control characters (invalid UTF-8 included), nesting up to
// encoding/json's limit.

// maxJSONDepth is encoding/json's maxNestingDepth: Valid refuses deeper nesting.
const maxJSONDepth = 10000

// validJSON reports whether b is one valid JSON value, white space around it
// allowed, as json.Valid.
func validJSON(b []byte) bool {
	end, ok := scanValue(b, skipSpace(b, 0), 0)
	return ok && skipSpace(b, end) == len(b)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// skipSpace returns the index of the first byte at or after i that is not JSON
// white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// scanValue validates the JSON value that starts at b[i] (no white space before it)
// inside depth open objects and arrays, and returns the index just after it.
func scanValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch c := b[i]; {
	case c == '"':
		end, _, ok := scanJSONString(b, i)
		return end, ok
	case c == '{':
		return scanObject(b, i, depth+1, nil)
	case c == '[':
		if depth+1 > maxJSONDepth {
			return i, false
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = scanValue(b, i, depth+1); !ok {
				return i, false
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return i, false
			}
			switch b[i] {
			case ',':
				i = skipSpace(b, i+1)
			case ']':
				return i + 1, true
			default:
				return i, false
			}
		}
	case c == 't':
		return scanLiteral(b, i, "true")
	case c == 'f':
		return scanLiteral(b, i, "false")
	case c == 'n':
		return scanLiteral(b, i, "null")
	case c == '-' || c >= '0' && c <= '9':
		return scanNumber(b, i)
	}
	return i, false
}

// memberFunc scans the value of an object's member, which starts at b[i] (no white
// space before it), and returns the index just after it; key is the key's text
// between its quotes, escapes not decoded, plain when printable ASCII without
// escapes. Returning false stops the object's scan, which then fails.
type memberFunc func(key []byte, plain bool, i int) (int, bool)

// scanObject validates the object that starts at b[i] ('{') at nesting depth depth
// (counting itself) and returns the index just after it. The values of its members
// are scanned by value if not nil (which must validate them as scanValue at depth
// depth), else by scanValue.
func scanObject(b []byte, i, depth int, value memberFunc) (int, bool) {
	if depth > maxJSONDepth {
		return i, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, true
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return i, false
		}
		kEnd, plain, ok := scanJSONString(b, i)
		if !ok {
			return kEnd, false
		}
		key := b[i+1 : kEnd-1]
		i = skipSpace(b, kEnd)
		if i >= len(b) || b[i] != ':' {
			return i, false
		}
		i = skipSpace(b, i+1)
		if value != nil {
			i, ok = value(key, plain, i)
		} else {
			i, ok = scanValue(b, i, depth)
		}
		if !ok {
			return i, false
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return i, false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return i + 1, true
		default:
			return i, false
		}
	}
}

// scanJSONString validates the string that starts at b[i] ('"') and returns the
// index just after its closing quote, and whether it is plain: printable ASCII
// without escapes (its bytes are its value).
func scanJSONString(b []byte, i int) (end int, plain, ok bool) {
	plain = true
	for j := i + 1; j < len(b); j++ {
		if j = plainRun(b, j); j >= len(b) {
			break
		}
		switch c := b[j]; {
		case c == '"':
			return j + 1, plain, true
		case c == '\\':
			plain = false
			j++
			if j >= len(b) {
				return j, false, false
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(b) {
					return len(b), false, false
				}
				for _, h := range b[j+1 : j+5] {
					if !isHex(h) {
						return j, false, false
					}
				}
				j += 4
			default:
				return j, false, false
			}
		case c < 0x20:
			return j, false, false
		default: // DEL and bytes of UTF-8 sequences (valid or not, as encoding/json)
			plain = false
		}
	}
	return len(b), false, false
}

func scanLiteral(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, false
	}
	return i + len(lit), true
}

// scanNumber validates -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at b[i].
func scanNumber(b []byte, i int) (int, bool) {
	digits := func(i int) (int, bool) {
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i, i > start
	}
	if b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return i, false
	}
	var ok bool
	if b[i] == '0' {
		i++
	} else if i, ok = digits(i); !ok {
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		if i, ok = digits(i + 1); !ok {
			return i, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i, ok = digits(i); !ok {
			return i, false
		}
	}
	return i, true
}

const (
	lsb = 0x0101010101010101 // the lowest bit of each byte of a word
	msb = 0x8080808080808080 // the highest
)

// plainRun returns the index of the first byte of s at or after i that is not
// printable ASCII or is a quote or a backslash (len(s) if none): the bytes a JSON
// string holds as they are. It tests eight bytes at a time.
func plainRun[T string | []byte](s T, i int) int {
	for ; i+8 <= len(s); i += 8 {
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		q, bs := x^(lsb*'"'), x^(lsb*'\\')
		// The high bit of a byte is set in m if the byte is below 0x20 (the borrow
		// from x-0x20), at or above 0x7f (x+1, or its own high bit), a quote or a
		// backslash (a zero byte of q or bs); a carry or a borrow only crosses into
		// the next byte from one of these, so m has no high bit for eight plain bytes.
		m := (x-lsb*0x20)&^x | (x + lsb) | x | (q-lsb)&^q | (bs-lsb)&^bs
		if m&msb != 0 {
			break
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return i
		}
	}
	return i
}
