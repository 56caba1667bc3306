package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"testing"
)

// decodeFrame does what a connection's reader does with the bytes of one frame.
func decodeFrame(frame []byte, maxSize uint32) (FrameHeader, any, []byte, error) {
	h, err := ParseFrameHeader(frame, maxSize)
	if err != nil {
		return h, nil, nil, err
	}
	if uint64(len(frame)) < uint64(h.Size) {
		return h, nil, nil, fmt.Errorf("%w: frame of %d bytes cut at %d", ErrMalformed, h.Size, len(frame))
	}
	body := frame[int(h.DataOff)*4 : h.Size]
	if len(body) == 0 {
		return h, nil, nil, nil // keep-alive
	}
	switch h.Type {
	case FrameAMQP:
		p, rest, err := DecodePerformative(body)
		return h, p, rest, err
	case FrameSASL:
		s, err := DecodeSASLFrame(body)
		return h, s, nil, err
	}
	return h, nil, nil, fmt.Errorf("%w: frame type %d", ErrMalformed, h.Type)
}

// allocated returns the bytes that f allocates, averaged over runs calls.
func allocated(runs int, f func()) uint64 {
	f() // warm up (lazily built tables, first-use allocations)
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&b)
	return (b.TotalAlloc - a.TotalAlloc) / uint64(runs)
}

// list32 encodes a list32 holding the already encoded elements.
func list32(elems ...[]byte) []byte {
	b := []byte{TypeList32, 0, 0, 0, 0, 0, 0, 0, 0}
	for _, e := range elems {
		b = append(b, e...)
	}
	binary.BigEndian.PutUint32(b[1:], uint32(len(b)-5))
	binary.BigEndian.PutUint32(b[5:], uint32(len(elems)))
	return b
}

// openWithProperty is an open frame body whose properties hold v under "k".
func openWithProperty(v []byte) []byte {
	nulls := slices.Repeat([][]byte{{TypeNull}}, 8)
	props := []byte{TypeMap32, 0, 0, 0, 0, 0, 0, 0, 2, TypeSym8, 1, 'k'}
	props = append(props, v...)
	binary.BigEndian.PutUint32(props[1:], uint32(len(props)-5))
	return append(hx("00 53 10"), list32(append([][]byte{hx("a1 01 63")}, append(nulls, props)...)...)...)
}

// hostileInputs are short encodings that claim far more than they hold.
var hostileInputs = []struct{ name, hex string }{
	{"vbin32 of 0xffffffff bytes", "b0 ffffffff 000102"},
	{"vbin32 of 0x7fffffff bytes", "b0 7fffffff 00"},
	{"str32 of 0xffffffff bytes", "b1 ffffffff 61"},
	{"sym32 of 0xfffffffe bytes", "b3 fffffffe 61"},
	{"list32 count 0xffffffff in size 4", "d0 00000004 ffffffff"},
	{"list32 count 0xffffffff in size 0xffffffff", "d0 ffffffff ffffffff 40404040"},
	{"list32 size 0xffffffff", "d0 ffffffff 00000001 40"},
	{"list8 count 255 in size 255 of 3 bytes", "c0 ff ff 40 40"},
	{"map32 count 0xfffffffe in size 4", "d1 00000004 fffffffe"},
	{"map32 odd count", "d1 00000007 00000003 404040"},
	{"map8 odd count", "c1 04 03 404040"},
	{"map32 size 0xffffffff", "d1 ffffffff 00000002 4040"},
	{"array32 of 0x40 nulls with count 0xffffffff", "f0 00000005 ffffffff 40"},
	{"array32 of list0 with count 0x7fffffff", "f0 00000005 7fffffff 45"},
	{"array32 of 0x70 with count 0x10000000", "f0 00000009 10000000 70 00000001"},
	{"array32 of vbin32 with count 0xffffffff", "f0 0000000a ffffffff b0 ffffffff 00"},
	{"array32 size 0xffffffff", "f0 ffffffff 00000001 40"},
	{"array8 of 255 nulls in 2 bytes", "e0 02 ff 40"},
	{"array8 of 255 list0 in 2 bytes", "e0 02 ff 45"},
	{"array of arrays of many nulls", "e0 08 02 e0 02 ff 40 02 ff 40"},
	{"array32 of described with huge count", "f0 00000007 ffffffff 00 53 01 40"},
	{"described chain then huge vbin", "00 00 00 00 b0 ffffffff 00"},
	{"symbol array with huge count", "f0 00000005 ffffffff a3"},
	{"composite with huge field count", "00 53 10 d0 00000004 ffffffff"},
	{"composite fields list32 huge size", "00 53 14 d0 ffffffff 00000001 43"},
}

func TestHostileLengths(t *testing.T) {
	for _, c := range hostileInputs {
		t.Run(c.name, func(t *testing.T) {
			in := hx(c.hex)
			var err error
			n := allocated(20, func() { _, err = NewDecoder(in).ReadAny() })
			requireMalformed(t, err, "ReadAny")
			if n > 64<<10 {
				t.Fatalf("decoding %d bytes allocated %d bytes", len(in), n)
			}
			// Skip does not look inside compounds: it either refuses the value or
			// steps over exactly the bytes it claims.
			d := NewDecoder(in)
			if err := d.Skip(); err == nil && d.Len() != 0 {
				t.Fatalf("Skip succeeded with %d bytes left", d.Len())
			} else if err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("Skip: %v", err)
			}
			// The same bytes in a field of a frame and in a message body.
			body := openWithProperty(in)
			n = allocated(20, func() { _, _, err = DecodePerformative(body) })
			requireMalformed(t, err, "DecodePerformative")
			if n > 64<<10 {
				t.Fatalf("decoding an open of %d bytes allocated %d bytes", len(body), n)
			}
			var m Message
			msg := append(hx("00 53 77"), in...)
			n = allocated(20, func() { err = m.Unmarshal(msg) })
			requireMalformed(t, err, "Message.Unmarshal")
			if n > 64<<10 {
				t.Fatalf("decoding a message of %d bytes allocated %d bytes", len(msg), n)
			}
		})
	}
	// Typed readers on hostile counts.
	for name, h := range map[string]string{
		"ReadSymbols": "f0 00000005 ffffffff a3", "ReadFields": "d1 00000004 fffffffe",
		"ReadAnnotations": "d1 00000005 ffffffff 40", "ReadStringMap": "c1 02 01 40",
	} {
		in := hx(h)
		var err error
		read := map[string]func(){
			"ReadSymbols":     func() { _, err = NewDecoder(in).ReadSymbols() },
			"ReadFields":      func() { _, err = NewDecoder(in).ReadFields() },
			"ReadAnnotations": func() { _, err = NewDecoder(in).ReadAnnotations() },
			"ReadStringMap":   func() { _, err = NewDecoder(in).ReadStringMap() },
		}[name]
		if n := allocated(20, read); n > 64<<10 {
			t.Errorf("%s(%s) allocated %d bytes", name, h, n)
		}
		requireMalformed(t, err, name)
	}
}

// TestAllocationPerInputByte bounds how much memory decoding can cost per byte of
// input, for the patterns that cost the most: tiny elements that decode into large Go
// values, and maps that claim many pairs.
func TestAllocationPerInputByte(t *testing.T) {
	const maxPerByte = 80
	patterns := map[string][]byte{
		"nulls":                {TypeNull},
		"empty lists":          {TypeList0},
		"empty maps":           hx("c1 01 00"),
		"empty binaries":       hx("a0 00"),
		"described nulls":      hx("00 40 40"),
		"empty properties":     hx("00 53 73 45"),
		"empty sources":        hx("00 53 28 45"),
		"arrays of two lists":  hx("e0 02 02 45"),
		"arrays of two nulls":  hx("e0 02 02 40"),
		"uuids":                append([]byte{TypeUUID}, make([]byte, 16)...),
		"one-character string": hx("a1 01 61"),
	}
	for name, p := range patterns {
		elems := slices.Repeat([][]byte{p}, 32768/len(p))
		in := list32(elems...)
		var err error
		n := allocated(3, func() { _, err = NewDecoder(in).ReadAny() })
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if per := float64(n) / float64(len(in)); per > maxPerByte {
			t.Errorf("%s: %.1f bytes allocated per input byte (%d for %d)", name, per, n, len(in))
		}
	}
	// A map header claiming one pair per two bytes, followed by garbage.
	in := make([]byte, 1<<16)
	for i := range in {
		in[i] = 0xff
	}
	in[0] = TypeMap32
	binary.BigEndian.PutUint32(in[1:], uint32(len(in)-5))
	binary.BigEndian.PutUint32(in[5:], uint32(len(in)-10))
	var err error
	for name, f := range map[string]func(){
		"ReadAny":         func() { _, err = NewDecoder(in).ReadAny() },
		"ReadFields":      func() { _, err = NewDecoder(in).ReadFields() },
		"ReadAnnotations": func() { _, err = NewDecoder(in).ReadAnnotations() },
		"ReadStringMap":   func() { _, err = NewDecoder(in).ReadStringMap() },
	} {
		n := allocated(3, f)
		requireMalformed(t, err, name)
		if n > 8<<10 && name != "ReadAny" || n > 20*uint64(len(in)) {
			t.Errorf("%s of a map claiming %d pairs allocated %d bytes", name, (len(in)-10)/2, n)
		}
	}
}

// deepLists returns n list32 nested in one another around a null.
func deepLists(n int) []byte {
	l := 9*n + 1
	b := make([]byte, l)
	for i := range n {
		off := 9 * i
		b[off] = TypeList32
		binary.BigEndian.PutUint32(b[off+1:], uint32(l-off-5))
		binary.BigEndian.PutUint32(b[off+5:], 1)
	}
	b[l-1] = TypeNull
	return b
}

// deepMaps returns n map32 nested as values.
func deepMaps(n int) []byte {
	l := 10*n + 1
	b := make([]byte, l)
	for i := range n {
		off := 10 * i
		b[off] = TypeMap32
		binary.BigEndian.PutUint32(b[off+1:], uint32(l-off-5))
		binary.BigEndian.PutUint32(b[off+5:], 2)
		b[off+9] = TypeNull
	}
	b[l-1] = TypeNull
	return b
}

// deepArrays returns n array32 nested as elements of one another.
func deepArrays(n int) []byte {
	l := 1 + 9*n
	b := make([]byte, l)
	b[0] = TypeArray32
	for i := range n {
		off := 1 + 9*i
		binary.BigEndian.PutUint32(b[off:], uint32(l-off-4))
		binary.BigEndian.PutUint32(b[off+4:], 1)
		b[off+8] = TypeArray32
	}
	b[l-1] = TypeNull
	return b
}

func TestHostileNesting(t *testing.T) {
	const n = 100_000
	cases := map[string][]byte{
		"lists":              deepLists(n),
		"maps":               deepMaps(n),
		"arrays":             deepArrays(n),
		"described chain":    append(slices.Repeat([]byte{TypeDescribed}, n), TypeNull, TypeNull),
		"described values":   slices.Repeat(hx("00 53 99"), n),
		"lists of described": slices.Repeat(hx("c0 ff 01 00 53 99"), n),
	}
	// Sanity: the builders make valid encodings when shallow.
	for _, b := range [][]byte{deepLists(3), deepMaps(3), deepArrays(3)} {
		if _, err := NewDecoder(b).ReadAny(); err != nil {
			t.Fatalf("shallow nesting % x: %v", b, err)
		}
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			var err error
			n := allocated(3, func() { _, err = NewDecoder(in).ReadAny() })
			requireMalformed(t, err, "ReadAny")
			if n > 64<<10 {
				t.Fatalf("allocated %d bytes", n)
			}
			_, _, err = DecodePerformative(openWithProperty(in))
			requireMalformed(t, err, "in an open's properties")
			var m Message
			requireMalformed(t, m.Unmarshal(append(hx("00 53 77"), in...)), "as an amqp-value")
			_, _, err = ScanMessage(append(hx("00 53 71"), in...))
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("ScanMessage: %v", err)
			}
		})
	}
}

// validFrames returns a frame of every performative (the transfer carrying a message)
// and every SASL body.
func validFrames(t testing.TB) map[string][]byte {
	msg, err := fixtureMessage().AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	frames := map[string][]byte{}
	for code, v := range compositeFixtures() {
		var frame []byte
		switch v := v.(type) {
		case Performative:
			var pl []byte
			if code == DescriptorTransfer {
				pl = msg
			}
			frame, err = AppendFrame(nil, FrameAMQP, 1, v, pl)
		case SASLFrame:
			frame, err = AppendFrame(nil, FrameSASL, 0, v, nil)
		default:
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		frames[DescriptorName(code)] = frame
	}
	return frames
}

func TestHostileTruncation(t *testing.T) {
	for name, frame := range validFrames(t) {
		if _, _, _, err := decodeFrame(frame, 0); err != nil {
			t.Fatalf("%s: the whole frame: %v", name, err)
		}
		pre, _ := decodePerfLen(frame)
		for i := range frame {
			_, _, _, err := decodeFrame(frame[:i], 0)
			requireMalformed(t, err, fmt.Sprintf("%s cut at %d", name, i))
			if i < FrameHeaderSize {
				continue
			}
			// The same cut with a header that agrees with it: an error unless the cut
			// falls in a transfer's payload.
			forged := slices.Clone(frame[:i])
			binary.BigEndian.PutUint32(forged, uint32(i))
			_, _, rest, err := decodeFrame(forged, 0)
			switch {
			case i >= FrameHeaderSize+pre && name == "amqp:transfer:list":
				if err != nil || len(rest) != i-FrameHeaderSize-pre {
					t.Fatalf("%s cut in its payload at %d: %v", name, i, err)
				}
			case i == FrameHeaderSize:
				if err != nil {
					t.Fatalf("empty frame: %v", err)
				}
			default:
				requireMalformed(t, err, fmt.Sprintf("%s forged at %d", name, i))
			}
		}
	}
	// Every prefix of a message: an error, unless the cut falls between sections.
	msg, _ := fixtureMessage().AppendTo(nil)
	boundaries := map[int]bool{0: true}
	d := NewDecoder(msg)
	for d.Len() > 0 {
		if _, err := d.ReadDescriptor(); err != nil {
			t.Fatal(err)
		}
		if err := d.Skip(); err != nil {
			t.Fatal(err)
		}
		boundaries[d.Offset()] = true
	}
	for i := range msg {
		var m Message
		err := m.Unmarshal(msg[:i])
		if boundaries[i] != (err == nil) {
			t.Fatalf("message cut at %d (boundary %v): %v", i, boundaries[i], err)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("message cut at %d: %v", i, err)
		}
	}
}

// decodePerfLen returns the length of the performative in a frame's body.
func decodePerfLen(frame []byte) (int, error) {
	body := frame[FrameHeaderSize:]
	_, rest, err := DecodePerformative(body)
	if err != nil {
		return len(body), err
	}
	return len(body) - len(rest), nil
}

func TestHostileText(t *testing.T) {
	bad := map[string]string{
		"open container-id":             "00 53 10 c0 04 01 a1 01 ff",
		"open hostname":                 "00 53 10 c0 06 02 a1 01 63 a1 01 c3",
		"attach name (surrogate)":       "00 53 12 c0 08 03 a1 03 eda080 43 41",
		"source address":                "00 53 28 c0 04 01 a1 01 80",
		"properties subject":            "00 53 73 c0 06 04 40 40 40 a1 01 fe",
		"error description":             "00 53 1d c0 07 02 a3 01 78 a1 01 ff",
		"fields string key":             "00 53 1d c0 0c 03 a3 01 78 40 c1 05 02 a1 01 ff 40",
		"fields value":                  "00 53 1d c0 0f 03 a3 01 78 40 c1 08 02 a3 01 6b a1 01 ff",
		"sasl-init hostname":            "00 53 41 c0 08 03 a3 01 78 40 a1 01 ff",
		"char in a list":                "c0 06 01 73 00110000",
		"char surrogate in an array":    "e0 0a 02 73 00000061 0000dc00",
		"string in an array of strings": "e0 06 02 a1 00 02 c328",
	}
	for name, h := range bad {
		_, err := NewDecoder(hx(h)).ReadAny()
		requireMalformed(t, err, name)
	}
	var m Message
	requireMalformed(t, m.Unmarshal(hx("00 53 74 c1 05 02 a1 01 ff 40")), "application-properties key")
	requireMalformed(t, m.Unmarshal(hx("00 53 77 73 7fffffff")), "amqp-value char")
}

func TestHostileFrameHeader(t *testing.T) {
	_, err := ParseFrameHeader(hx("00100000 02 00 0000"), 512)
	var tl *FrameTooLargeError
	if !errors.As(err, &tl) || tl.Size != 0x100000 || tl.Max != 512 {
		t.Fatalf("oversized frame: %v", err)
	}
	if _, err := ParseFrameHeader(hx("00100000 02 00 0000"), 0); err != nil {
		t.Fatalf("no limit: %v", err)
	}
	if _, err := ParseFrameHeader(hx("00000200 02 00 0000"), 512); err != nil {
		t.Fatalf("frame of exactly max-frame-size: %v", err)
	}
	for name, h := range map[string]string{
		"short header":               "00000008 02 00 00",
		"data offset 0":              "00000008 00 00 0000",
		"data offset 1":              "00000008 01 00 0000",
		"size below 8":               "00000007 02 00 0000",
		"size 0":                     "00000000 02 00 0000",
		"size below the data offset": "00000010 05 00 0000",
		"data offset 255":            "000003fb ff 00 0000",
	} {
		_, err := ParseFrameHeader(hx(h), 0)
		requireMalformed(t, err, name)
	}
	h, err := ParseFrameHeader(hx("00000010 04 01 abcd 00000000 00000000"), 0)
	if err != nil || h.DataOff != 4 || h.Type != FrameSASL || h.Channel != 0xabcd || h.Size != 16 {
		t.Fatalf("extended header: %+v %v", h, err)
	}
	for _, c := range []struct {
		hex  string
		want ProtocolHeader
		ok   bool
	}{
		{"414d5150 00 01 00 00", ProtocolHeader{ID: ProtoAMQP, Major: 1}, true},
		{"414d5150 03 01 00 00", ProtocolHeader{ID: ProtoSASL, Major: 1}, true},
		{"414d5150 02 01 00 00", ProtocolHeader{ID: ProtoTLS, Major: 1}, true},
		{"414d5150 00 00 09 01", ProtocolHeader{Minor: 9, Revision: 1}, true},
		{"48545450 2f 31 2e 31", ProtocolHeader{}, false},
		{"414d5150 00 01 00", ProtocolHeader{}, false},
	} {
		got, err := ParseProtocolHeader(hx(c.hex))
		if c.ok != (err == nil) || (c.ok && got != c.want) {
			t.Errorf("ParseProtocolHeader(%s) = %+v %v", c.hex, got, err)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseProtocolHeader(%s): %v", c.hex, err)
		}
		if pb := got.Bytes(); c.ok && string(pb[:]) != string(hx(c.hex)) {
			t.Errorf("Bytes() = % x", pb)
		}
	}
}
