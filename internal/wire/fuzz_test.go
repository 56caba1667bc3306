package wire

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// The fuzz targets check three things on any input: decoding never panics; every error
// wraps ErrMalformed (or is a FrameTooLargeError); and whatever decodes re-encodes into
// bytes that decode to an equal value and re-encode to the same bytes. The comparison
// is decoded→encoded→decoded, never input bytes against output bytes, because peers
// may use wider encodings than this package writes. The seed corpus is in
// testdata/fuzz/<FuzzName>; `WIRE_WRITE_CORPUS=1 go test -run TestWriteFuzzCorpus`
// rewrites it.

func checkDecodeError(t *testing.T, err error) {
	t.Helper()
	var tl *FrameTooLargeError
	if !errors.Is(err, ErrMalformed) && !errors.As(err, &tl) {
		t.Fatalf("error %q wraps neither ErrMalformed nor FrameTooLargeError", err)
	}
}

func FuzzDecodePerformative(f *testing.F) {
	f.Fuzz(func(t *testing.T, frame []byte) {
		h, v, rest, err := decodeFrame(frame, 1<<20)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		if v == nil {
			return // an empty (keep-alive) frame
		}
		out, err := AppendFrame(nil, h.Type, h.Channel, v.(Marshaler), rest)
		if err != nil {
			t.Fatalf("re-encoding %#v: %v", v, err)
		}
		h2, v2, rest2, err := decodeFrame(out, 0)
		if err != nil {
			t.Fatalf("decoding the re-encoded %T (% x): %v", v, out, err)
		}
		if h2.Type != h.Type || h2.Channel != h.Channel {
			t.Fatalf("header %+v became %+v", h, h2)
		}
		if !equalAMQP(v, v2) {
			t.Fatalf("round trip changed the frame body\nfirst  %#v\nsecond %#v", v, v2)
		}
		if !bytes.Equal(rest, rest2) {
			t.Fatalf("payload % x became % x", rest, rest2)
		}
		out2, err := AppendFrame(nil, h2.Type, h2.Channel, v2.(Marshaler), rest2)
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("encoding is not stable:\n% x\n% x (%v)", out, out2, err)
		}
	})
}

func FuzzReadAny(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		d := NewDecoder(data)
		v, err := d.ReadAny()
		skip := NewDecoder(data)
		serr := skip.Skip()
		if serr != nil {
			checkDecodeError(t, serr)
		}
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		if serr != nil || skip.Offset() != d.Offset() {
			t.Fatalf("ReadAny read %d bytes, Skip %d (%v)", d.Offset(), skip.Offset(), serr)
		}
		enc, err := AppendAny(nil, v)
		if err != nil {
			t.Fatalf("re-encoding %#v: %v", v, err)
		}
		d2 := NewDecoder(enc)
		v2, err := d2.ReadAny()
		if err != nil {
			t.Fatalf("decoding the re-encoded % x: %v", enc, err)
		}
		if d2.Len() != 0 {
			t.Fatalf("re-encoded value has %d bytes after it", d2.Len())
		}
		if !equalAMQP(v, v2) {
			t.Fatalf("round trip changed the value\nfirst  %#v\nsecond %#v", v, v2)
		}
		enc2, err := AppendAny(nil, v2)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable:\n% x\n% x (%v)", enc, enc2, err)
		}
	})
}

func FuzzMessageUnmarshal(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		var m Message
		err := m.Unmarshal(data)
		h, p, serr := ScanMessage(data)
		if serr != nil {
			checkDecodeError(t, serr)
		}
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		if serr != nil || !equalAMQP(h, m.Header) || !equalAMQP(p, m.Properties) {
			t.Fatalf("ScanMessage = %#v %#v %v; Unmarshal gave %#v %#v", h, p, serr, m.Header, m.Properties)
		}
		enc, err := m.AppendTo(nil)
		if err != nil {
			t.Fatalf("re-encoding %#v: %v", &m, err)
		}
		var m2 Message
		if err := m2.Unmarshal(enc); err != nil {
			t.Fatalf("decoding the re-encoded % x: %v", enc, err)
		}
		if !equalAMQP(&m, &m2) {
			t.Fatalf("round trip changed the message\nfirst  %#v\nsecond %#v", &m, &m2)
		}
		enc2, err := m2.AppendTo(nil)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable:\n% x\n% x (%v)", enc, enc2, err)
		}
	})
}

// seedCorpus returns the committed seeds: valid encodings of every performative and
// SASL frame, values of every type, and messages with every section and body kind.
func seedCorpus(t testing.TB) map[string]map[string][]byte {
	frames := map[string][]byte{}
	small := &Message{Properties: &Properties{MessageID: uint64(1), To: "q"}, Data: [][]byte{[]byte("hi")}}
	smallMsg, _ := small.AppendTo(nil)
	for code, v := range compositeFixtures() {
		var frame []byte
		var err error
		switch v := v.(type) {
		case Performative:
			var pl []byte
			if code == DescriptorTransfer {
				pl = smallMsg
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
		frames[DescriptorName(code)[len("amqp:"):len(DescriptorName(code))-len(":list")]] = frame
	}
	frames["keepalive"], _ = AppendFrame(nil, FrameAMQP, 0, nil, nil)
	frames["open-extended-header"] = hx("00000015 03 00 0000 00000000 00 53 10 c0 04 01 a1 01 63")
	frames["attach-dynamic-symbolic"] = cat(hx("00000031 02 00 0000 00 a3 10"), []byte("amqp:attach:list"),
		hx("c0 14 07 a1 01 6c 43 41 40 40 00 53 28 c0 06 05 40 40 40 40 41 40"))

	values := map[string][]byte{}
	for name, v := range map[string]any{
		"primitives": []any{nil, true, false, uint8(1), uint16(2), uint32(0), uint32(7), uint32(1 << 20), uint64(0),
			uint64(9), uint64(1 << 40), int8(-1), int16(-2), int32(3), int32(-300), int64(4), int64(1 << 40),
			float32(1.5), 2.5, Decimal32{1}, Decimal64{2}, Decimal128{3}, Char('é'), Milliseconds(-1), uuidFixture,
			[]byte("bin"), "str", Symbol("sym")},
		"map":       &Map{Entries: []MapEntry{{"k", []any{}}, {uint64(1), &Map{}}, {[]byte{0}, nil}}},
		"arrays":    []any{&Array{Code: TypeSym8, Values: []any{Symbol("a")}}, &Array{Code: TypeList32, Values: []any{[]any{true}}}, &Array{Code: TypeBoolean, Values: []any{}}},
		"described": []any{selectorFilter("a = 1"), &Described{Descriptor: uint64(0x99), Value: []any{}}, &Modified{DeliveryFailed: true}},
		"long":      []any{bytes.Repeat([]byte{1}, 300), string(bytes.Repeat([]byte{'x'}, 300))},
	} {
		b, err := AppendAny(nil, v)
		if err != nil {
			t.Fatal(err)
		}
		values[name] = b
	}
	values["wide-forms"] = hx("d0 00000024 00000006 56 01 70 00000003 b1 00000001 61 b3 00000000 f0 00000005 00000000 50 e0 02 02 41")

	messages := map[string][]byte{}
	for name, m := range map[string]*Message{
		"every-section":  fixtureMessage(),
		"oslo-rpc-call":  {Properties: &Properties{MessageID: "m1", To: "openstack.org/om/rpc/anycast/t/s", ReplyTo: "amqp:/_$cmd/r1"}, Value: &Map{Entries: []MapEntry{{"oslo.version", "2.0"}, {"oslo.message", "{\"method\": \"echo\"}"}}}, HasValue: true},
		"sequence":       {Header: &Header{Durable: true}, Sequence: [][]any{{int32(1)}, {}}},
		"value-null":     {MessageAnnotations: Annotations{Symbol("x-opt-to"): "q"}, HasValue: true},
		"data-and-props": small,
	} {
		b, err := m.AppendTo(nil)
		if err != nil {
			t.Fatal(err)
		}
		messages[name] = b
	}
	messages["symbolic-descriptors"] = cat(hx("00 a3 10"), []byte("amqp:header:list"), hx("45 00 a3 10"), []byte("amqp:data:binary"), hx("a0 00"))
	return map[string]map[string][]byte{
		"FuzzDecodePerformative": frames,
		"FuzzReadAny":            values,
		"FuzzMessageUnmarshal":   messages,
	}
}

// TestWriteFuzzCorpus writes the seed corpus when WIRE_WRITE_CORPUS=1, and otherwise
// checks that the committed corpus holds every seed.
func TestWriteFuzzCorpus(t *testing.T) {
	write := os.Getenv("WIRE_WRITE_CORPUS") == "1"
	for target, seeds := range seedCorpus(t) {
		dir := filepath.Join("testdata", "fuzz", target)
		if write {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for name, b := range seeds {
			content := []byte("go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n")
			path := filepath.Join(dir, name)
			if write {
				if err := os.WriteFile(path, content, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, content) {
				t.Errorf("seed %s is missing or stale (run WIRE_WRITE_CORPUS=1 go test -run TestWriteFuzzCorpus ./internal/wire): %v", path, err)
			}
		}
	}
}

// TestSeedsAreValid: the seeds decode, so the fuzzers start from real frames.
func TestSeedsAreValid(t *testing.T) {
	seeds := seedCorpus(t)
	for name, b := range seeds["FuzzDecodePerformative"] {
		if _, _, _, err := decodeFrame(b, 0); err != nil {
			t.Errorf("frame seed %s: %v", name, err)
		}
	}
	for name, b := range seeds["FuzzReadAny"] {
		if d := NewDecoder(b); func() error { _, err := d.ReadAny(); return err }() != nil || d.Len() != 0 {
			t.Errorf("value seed %s does not decode whole", name)
		}
	}
	for name, b := range seeds["FuzzMessageUnmarshal"] {
		var m Message
		if err := m.Unmarshal(b); err != nil {
			t.Errorf("message seed %s: %v", name, err)
		}
	}
}
