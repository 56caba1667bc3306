package wire

import (
	"encoding/binary"
	"strings"
	"testing"
)

// Regression tests, one per bug found while testing and fuzzing the codec. Each names
// the input that showed it.

// Bug 1: a mandatory string, symbol or binary field holding its Go zero value was
// encoded as null, which the decoder (and any peer) refuses as a missing field. An
// open with container-id "" decoded fine and re-encoded as 00 53 10 45.
func TestRegressionEmptyMandatoryFieldEncodedAsNull(t *testing.T) {
	in := hx("00 53 10 c0 03 01 a1 00")
	p, _, err := DecodePerformative(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.(*Open).AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(in) {
		t.Fatalf("open with container-id \"\" re-encodes as % x", out)
	}
	for _, v := range []Marshaler{&Attach{}, &SASLInit{}, &SASLChallenge{}, &SASLResponse{}, &SASLMechanisms{},
		&Declared{}, &Discharge{}, &TransactionalState{}, &Error{}, &Open{}} {
		b, _ := v.AppendTo(nil)
		if _, err := NewDecoder(b).ReadAny(); err != nil {
			t.Errorf("zero %T encodes as % x, which does not decode: %v", v, b, err)
		}
	}
}

// Bug 2: an error whose condition was the empty symbol (a3 00) was refused as missing
// its condition: the generated decoder tested the value for "" instead of the wire
// for null.
func TestRegressionEmptyErrorCondition(t *testing.T) {
	v, err := NewDecoder(hx("00 53 1d c0 03 01 a3 00")).ReadAny()
	if err != nil || !equalStrict(v, &Error{}) {
		t.Fatalf("%#v %v", v, err)
	}
}

// Bug 3: an array8 could claim 255 zero-width elements (nulls, list0, true, uint0) in
// 3 bytes; an array32 of 3000 such arrays (9 KB) decoded into 12.5 MB.
func TestRegressionArray8Amplification(t *testing.T) {
	const n = 3000
	in := []byte{TypeArray32, 0, 0, 0, 0, 0, 0, 0, 0, TypeArray8}
	for range n {
		in = append(in, 0x02, 0xff, TypeNull)
	}
	binary.BigEndian.PutUint32(in[1:], uint32(len(in)-5))
	binary.BigEndian.PutUint32(in[5:], n)
	var err error
	if a := allocated(3, func() { _, err = NewDecoder(in).ReadAny() }); a > 64*uint64(len(in)) {
		t.Fatalf("%d bytes allocated for %d of input", a, len(in))
	}
	requireMalformed(t, err, "array of array8 with 255 nulls each")
}

// Bug 4 (found by FuzzReadAny): an array whose element constructor was 0x00 twice
// (e0 04 00 00 40 00: described by null, then "described" again) decoded with no
// elements as Array{Code: 0}, which re-encodes as e0 02 00 00 and does not decode.
func TestRegressionArrayConstructorDescribedTwice(t *testing.T) {
	_, err := NewDecoder(hx("e0 04 00 00 40 00")).ReadAny()
	requireMalformed(t, err, "array element constructor 0x00")
	_, err = NewDecoder(hx("e0 03 00 99 00")).ReadAny()
	requireMalformed(t, err, "empty array of an unknown constructor")
}

// Bug 5 (found by FuzzMessageUnmarshal): an amqp-sequence section holding null
// (00 53 76 40) decoded as Sequence [nil] but re-encoded as an empty list, so the
// round trip changed the message.
func TestRegressionNullSequenceSection(t *testing.T) {
	var m Message
	if err := m.Unmarshal(hx("00 53 76 40")); err != nil {
		t.Fatal(err)
	}
	roundTripMessage(t, &m)
	if !equalStrict(m.Sequence, [][]any{{}}) {
		t.Fatalf("sequence %#v", m.Sequence)
	}
}

// Bug 6: the encoder allowed one more level of nesting than the decoder, so 65 nested
// lists encoded into bytes that no decoder of this package would read.
func TestRegressionEncoderDepthOffByOne(t *testing.T) {
	v := any([]any{})
	for range MaxDepth {
		v = []any{v}
	}
	if _, err := AppendAny(nil, v); err == nil {
		t.Fatal("encoded 65 nested lists")
	}
}

// Bug 7: Skip took format codes that are not in the type system (0x46, 0x57, 0x9f)
// for fixed-width values, and maps with an odd count, so extension fields of a
// composite (skipped, not decoded) let garbage through: an end frame 00 53 17 c0 03 02
// 40 46 decoded.
func TestRegressionSkipUnknownCodes(t *testing.T) {
	for _, h := range []string{"00 53 17 c0 03 02 40 46", "00 53 17 c0 04 02 40 57 00", "00 53 17 c0 05 02 40 c1 02 01 40"} {
		_, _, err := DecodePerformative(hx(h))
		requireMalformed(t, err, h)
	}
}

// Bug 8: a map header claiming one pair per two bytes made ReadFields, ReadAnnotations
// and ReadStringMap size a Go map for every claimed pair before reading the first key:
// 40 bytes allocated per input byte of garbage.
func TestRegressionMapHintAllocation(t *testing.T) {
	in := make([]byte, 1<<16)
	for i := range in {
		in[i] = 0xff
	}
	in[0] = TypeMap32
	binary.BigEndian.PutUint32(in[1:], uint32(len(in)-5))
	binary.BigEndian.PutUint32(in[5:], uint32(len(in)-10))
	var err error
	if a := allocated(3, func() { _, err = NewDecoder(in).ReadFields() }); a > 16<<10 {
		t.Fatalf("ReadFields allocated %d bytes for a map of garbage", a)
	}
	requireMalformed(t, err, "ReadFields")
}

// Bug 9: Message.Unmarshal reported the offset of a bad section one byte too far (just
// after the constructor it had read).
func TestRegressionMessageErrorOffset(t *testing.T) {
	var m Message
	err := m.Unmarshal(hx("00 53 75 a0 00 ff"))
	if err == nil || !strings.Contains(err.Error(), "at byte 5:") {
		t.Fatalf("%v", err)
	}
}

// Bug 10: the encoder wrote strings that are not UTF-8 (in composite fields, map keys,
// message ids) and chars that are not Unicode scalar values, which the decoder then
// refused: a frame this package sent, it would not read.
func TestRegressionEncoderWritesWhatDecoderRefuses(t *testing.T) {
	for name, v := range map[string]Marshaler{
		"open container-id":  &Open{ContainerID: "\xff"},
		"attach name":        &Attach{Name: "\xc3"},
		"source address":     &Source{Address: "\xed\xa0\x80"},
		"properties subject": &Properties{Subject: "\xff"},
		"message-id":         &Properties{MessageID: "\xff"},
		"error description":  &Error{Condition: "x", Description: "\xff"},
	} {
		if b, err := v.AppendTo(nil); err == nil {
			t.Errorf("%s: encoded as % x", name, b)
		}
	}
	for name, v := range map[string]any{
		"map key":         map[string]any{"\xff": 1},
		"surrogate char":  Char(0xd800),
		"char > 10FFFF":   Char(0x110000),
		"negative char":   Char(-1),
		"char in array":   &Array{Code: TypeChar, Values: []any{Char(0xdfff)}},
		"in a properties": &Message{ApplicationProperties: map[string]any{"\xff": 1}},
	} {
		var err error
		if m, ok := v.(*Message); ok {
			_, err = m.AppendTo(nil)
		} else {
			_, err = AppendAny(nil, v)
		}
		if err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
}

// Bug 11 (found by FuzzReadAny in a 2-minute run of cmd/reliability): an array whose
// element constructor was described by null decoded as an array of bare elements, the
// null descriptor dropped, so the value changed; e0 04 04 00 40 40 (four described
// nulls in 4 bytes) re-encoded as e0 02 04 40, four nulls in 2 bytes, which the decoder
// refuses (at most one array element per byte). The null descriptor is refused.
func TestRegressionArrayNullDescriptor(t *testing.T) {
	for _, in := range []string{"e0 04 04 00 40 40", "e0 05 01 00 40 a1 00", "f0 00 00 00 07 00 00 00 01 00 40 41"} {
		if v, err := NewDecoder(hx(in)).ReadAny(); err == nil {
			t.Errorf("% s decodes as %#v", in, v)
		} else {
			checkDecodeError(t, err)
		}
	}
	// A described array with a real descriptor still decodes and round-trips.
	in := hx("e0 05 02 00 53 01 40")
	v, err := NewDecoder(in).ReadAny()
	if err != nil {
		t.Fatal(err)
	}
	if a := v.(*Array); a.Descriptor != uint64(1) || len(a.Values) != 2 {
		t.Fatalf("decoded as %#v", a)
	}
}

// Bug 12 (found by FuzzReadAny in a second 2-minute run of cmd/reliability): the
// encoder wrote an array in the 8-bit form whenever its size and count fit a byte, but
// the decoder takes at most one element per byte of size, and the 8-bit form's size
// counts 3 bytes fewer than the 32-bit one's: five nulls (zero-width elements),
// f0 00 00 00 05 00 00 00 05 40, decoded and re-encoded as e0 02 05 40, which the
// decoder refuses. The encoder keeps the 32-bit form there.
func TestRegressionArrayOfNullsNarrowed(t *testing.T) {
	for _, n := range []int{1, 2, 5} {
		in := binary.BigEndian.AppendUint32([]byte{TypeArray32}, 5)
		in = binary.BigEndian.AppendUint32(in, uint32(n))
		in = append(in, TypeNull)
		v, err := NewDecoder(in).ReadAny()
		if err != nil {
			t.Fatalf("%d nulls: %v", n, err)
		}
		out, err := AppendAny(nil, v)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := NewDecoder(out).ReadAny(); err != nil {
			t.Errorf("%d nulls re-encode as % x, which does not decode: %v", n, out, err)
		}
		if n <= 2 && out[0] != TypeArray8 {
			t.Errorf("%d nulls re-encode as % x, not in the 8-bit form", n, out)
		}
	}
}
