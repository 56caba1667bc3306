package wire

import (
	"bytes"
	"errors"
	"testing"
)

func roundTripMessage(t *testing.T, m *Message) []byte {
	t.Helper()
	enc, err := m.AppendTo(nil)
	if err != nil {
		t.Fatalf("AppendTo: %v", err)
	}
	var back Message
	if err := back.Unmarshal(enc); err != nil {
		t.Fatalf("Unmarshal(% x): %v", enc, err)
	}
	if !equalStrict(&back, m) {
		t.Fatalf("round trip\n got %#v\nwant %#v", &back, m)
	}
	return enc
}

func TestMessageEverySection(t *testing.T) {
	m := fixtureMessage()
	enc := roundTripMessage(t, m)
	// The sections are on the wire in the order of part 3.2.
	order := []uint64{DescriptorHeader, DescriptorDeliveryAnnotations, DescriptorMessageAnnotations,
		DescriptorProperties, DescriptorApplicationProperties, DescriptorData, DescriptorData, DescriptorFooter}
	d := NewDecoder(enc)
	for i, want := range order {
		start := d.Offset()
		code, err := d.ReadDescriptor()
		if err != nil || code != want {
			t.Fatalf("section %d at byte %d: 0x%x %v, want %s", i, start, code, err, DescriptorName(want))
		}
		if err := d.Skip(); err != nil {
			t.Fatalf("section %d: %v", i, err)
		}
	}
	if d.Len() != 0 {
		t.Fatalf("%d bytes after the footer", d.Len())
	}
	// Unmarshal replaces whatever the message held.
	dirty := &Message{Value: "old", HasValue: true, Sequence: [][]any{{1}}}
	if err := dirty.Unmarshal(enc); err != nil || !equalStrict(dirty, m) {
		t.Fatalf("Unmarshal into a used message: %v %#v", err, dirty)
	}
}

func TestMessageBodies(t *testing.T) {
	cases := []struct {
		name string
		m    *Message
		hex  string
	}{
		{"one data section", &Message{Data: [][]byte{[]byte("abc")}}, "00 53 75 a0 03 616263"},
		{"empty data section", &Message{Data: [][]byte{{}}}, "00 53 75 a0 00"},
		{"three data sections", &Message{Data: [][]byte{{1}, {2}, {3}}}, "00 53 75 a0 01 01 00 53 75 a0 01 02 00 53 75 a0 01 03"},
		{"amqp-value string", &Message{Value: "hi", HasValue: true}, "00 53 77 a1 02 6869"},
		{"amqp-value null", &Message{Value: nil, HasValue: true}, "00 53 77 40"},
		{"amqp-value map (oslo.messaging's body)", &Message{Value: &Map{Entries: []MapEntry{{"oslo.message", "{}"}}}, HasValue: true},
			"00 53 77 c1 13 02 a1 0c 6f736c6f2e6d657373616765 a1 02 7b7d"},
		{"amqp-value composite", &Message{Value: &Accepted{}, HasValue: true}, "00 53 77 00 53 24 45"},
		{"amqp-sequence", &Message{Sequence: [][]any{{int32(1), "a"}}}, "00 53 76 c0 06 02 5401 a10161"},
		{"two amqp-sequences", &Message{Sequence: [][]any{{}, {true}}}, "00 53 76 45 00 53 76 c0 02 01 41"},
		{"no body", &Message{Properties: &Properties{To: "q"}}, "00 53 73 c0 06 03 40 40 a10171"},
		{"properties and value", &Message{Properties: &Properties{To: "q"}, Value: "hi", HasValue: true},
			"00 53 73 c0 06 03 40 40 a10171 00 53 77 a1 02 6869"},
		{"empty header", &Message{Header: &Header{}}, "00 53 70 45"},
		{"empty maps", &Message{DeliveryAnnotations: Annotations{}, MessageAnnotations: Annotations{},
			ApplicationProperties: map[string]any{}, Footer: Annotations{}},
			"00 53 71 c1 01 00 00 53 72 c1 01 00 00 53 74 c1 01 00 00 53 78 c1 01 00"},
		{"nothing at all", &Message{}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			enc := roundTripMessage(t, c.m)
			if want := hx(c.hex); !bytes.Equal(enc, want) {
				t.Fatalf("AppendTo\n got % x\nwant % x", enc, want)
			}
		})
	}
	var m Message
	if err := m.Unmarshal(hx("00 53 77 40")); err != nil || !m.HasValue || m.Value != nil {
		t.Fatalf("amqp-value null: HasValue=%v Value=%v err=%v", m.HasValue, m.Value, err)
	}
}

// TestMessageNonCanonicalSections reads sections in forms the encoder does not write.
func TestMessageNonCanonicalSections(t *testing.T) {
	cases := []struct {
		name, hex string
		want      *Message
	}{
		{"data as vbin32", "00 53 75 b0 00000001 61", &Message{Data: [][]byte{[]byte("a")}}},
		{"data null", "00 53 75 40", &Message{Data: [][]byte{{}}}},
		{"amqp-sequence null", "00 53 76 40", &Message{Sequence: [][]any{{}}}},
		{"amqp-sequence list32", "00 53 76 d0 00000005 00000001 40", &Message{Sequence: [][]any{{nil}}}},
		{"symbolic section descriptors", "00 a3 10 616d71703a646174613a62696e617279 a0 01 61",
			&Message{Data: [][]byte{[]byte("a")}}},
		{"wide ulong descriptor", "00 80 0000000000000077 41", &Message{Value: true, HasValue: true}},
		{"header null", "00 53 70 40", &Message{Header: &Header{}}},
		{"application-properties null", "00 53 74 40", &Message{}},
	}
	for _, c := range cases {
		var m Message
		if err := m.Unmarshal(hx(c.hex)); err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !equalStrict(&m, c.want) {
			t.Errorf("%s\n got %#v\nwant %#v", c.name, &m, c.want)
		}
	}
}

func TestMessageErrors(t *testing.T) {
	const (
		hdr   = "00 53 70 45 "
		da    = "00 53 71 c1 01 00 "
		ma    = "00 53 72 c1 01 00 "
		props = "00 53 73 45 "
		ap    = "00 53 74 c1 01 00 "
		data  = "00 53 75 a0 00 "
		seq   = "00 53 76 45 "
		value = "00 53 77 40 "
		foot  = "00 53 78 c1 01 00 "
	)
	cases := []struct{ name, hex string }{
		{"header after properties", props + hdr},
		{"header twice", hdr + hdr},
		{"delivery-annotations after message-annotations", ma + da},
		{"properties twice", props + props},
		{"properties after application-properties", ap + props},
		{"application-properties after body", data + ap},
		{"footer before body", foot + data},
		{"footer twice", foot + foot},
		{"data then amqp-sequence", data + seq},
		{"amqp-sequence then data", seq + data},
		{"data then amqp-value", data + value},
		{"amqp-value then data", value + data},
		{"amqp-value twice", value + value},
		{"amqp-sequence then amqp-value", seq + value},
		{"unknown section", "00 53 99 40"},
		{"unknown symbolic section", "00 a3 03 783a79 40"},
		{"performative as a section", "00 53 10 c0 04 01 a10163"},
		{"not a described value", "a1 01 61"},
		{"truncated section", "00 53 75 a0 05 61"},
		{"descriptor only", "00 53 75"},
		{"data holding a string", "00 53 75 a1 01 61"},
		{"amqp-sequence holding a map", "00 53 76 c1 01 00"},
		{"application-properties with a symbol key", "00 53 74 c1 05 02 a3 0161 40"},
		{"application-properties not a map", "00 53 74 45"},
		{"message-annotations with a string key", "00 53 72 c1 05 02 a1 0161 40"},
		{"footer with a list key", "00 53 78 c1 03 02 45 40"},
		{"header holding a map", "00 53 70 c1 01 00"},
		{"properties with a bad message-id", "00 53 73 c0 02 01 41"},
		{"invalid UTF-8 in amqp-value", "00 53 77 a1 01 ff"},
		{"trailing garbage", data + "ff"},
	}
	for _, c := range cases {
		var m Message
		requireMalformed(t, m.Unmarshal(hx(c.hex)), c.name)
	}
	// Encoding refuses what cannot be decoded.
	bad := []struct {
		name string
		m    *Message
	}{
		{"data and amqp-value", &Message{Data: [][]byte{{1}}, Value: 1, HasValue: true}},
		{"data and amqp-sequence", &Message{Data: [][]byte{{1}}, Sequence: [][]any{{}}}},
		{"amqp-sequence and amqp-value", &Message{Sequence: [][]any{{}}, HasValue: true}},
		{"bad annotation key", &Message{MessageAnnotations: Annotations{int32(1): nil}}},
		{"bad delivery annotation key", &Message{DeliveryAnnotations: Annotations{"s": nil}}},
		{"bad footer key", &Message{Footer: Annotations{true: nil}}},
		{"unsupported application property", &Message{ApplicationProperties: map[string]any{"k": struct{}{}}}},
		{"invalid UTF-8 application property key", &Message{ApplicationProperties: map[string]any{"\xff": 1}}},
		{"bad message-id", &Message{Properties: &Properties{MessageID: int32(1)}}},
		{"unsupported amqp-value", &Message{Value: make(chan int), HasValue: true}},
		{"unsupported sequence element", &Message{Sequence: [][]any{{struct{}{}}}}},
	}
	for _, c := range bad {
		if b, err := c.m.AppendTo(nil); err == nil {
			t.Errorf("%s: AppendTo succeeded: % x", c.name, b)
		}
	}
}

func TestMessageValueIsNullNotAbsent(t *testing.T) {
	// A nil Value without HasValue is no body at all.
	enc, _ := (&Message{Value: nil}).AppendTo(nil)
	if len(enc) != 0 {
		t.Fatalf("no body encodes as % x", enc)
	}
	enc, _ = (&Message{HasValue: true}).AppendTo(nil)
	if !bytes.Equal(enc, hx("00 53 77 40")) {
		t.Fatalf("null amqp-value encodes as % x", enc)
	}
}

func TestScanMessage(t *testing.T) {
	full, _ := fixtureMessage().AppendTo(nil)
	h, p, err := ScanMessage(full)
	if err != nil {
		t.Fatal(err)
	}
	if !equalStrict(h, fixtureMessage().Header) || !equalStrict(p, fixtureMessage().Properties) {
		t.Fatalf("ScanMessage = %#v %#v", h, p)
	}
	cases := []struct {
		name    string
		m       *Message
		hasHdr  bool
		hasProp bool
	}{
		{"body only", &Message{Data: [][]byte{{1}}}, false, false},
		{"header only", &Message{Header: &Header{Durable: true}, Value: 1, HasValue: true}, true, false},
		{"properties after annotations", &Message{MessageAnnotations: Annotations{Symbol("x"): 1},
			DeliveryAnnotations: Annotations{uint64(1): []any{1, 2}}, Properties: &Properties{To: "q"}}, false, true},
		{"empty", &Message{}, false, false},
	}
	for _, c := range cases {
		b, _ := c.m.AppendTo(nil)
		h, p, err := ScanMessage(b)
		if err != nil || (h != nil) != c.hasHdr || (p != nil) != c.hasProp {
			t.Errorf("%s: ScanMessage = %v %v %v", c.name, h, p, err)
			continue
		}
		if c.hasHdr && !equalStrict(h, c.m.Header) || c.hasProp && !equalStrict(p, c.m.Properties) {
			t.Errorf("%s: ScanMessage = %#v %#v", c.name, h, p)
		}
	}
	// It stops at the properties: what follows is not read at all.
	b, _ := (&Message{Properties: &Properties{To: "q"}}).AppendTo(nil)
	h, p, err = ScanMessage(append(b, 0xff, 0xff))
	if err != nil || h != nil || p == nil || p.To != "q" {
		t.Fatalf("ScanMessage with garbage after properties: %v %v %v", h, p, err)
	}
	// Annotations are skipped without being built.
	_, p, err = ScanMessage(hx("00 53 72 c1 03 02 45 40 00 53 73 c0 06 03 40 40 a10171"))
	if err != nil || p == nil || p.To != "q" {
		t.Fatalf("ScanMessage past annotations: %v %v", p, err)
	}
	for _, h := range []string{"00 53 70 c1 01 00", "00 53 73 c0 02 01 41", "a1 01 61", "00 53 72 c1 05 02", "00"} {
		_, _, err := ScanMessage(hx(h))
		requireMalformed(t, err, "ScanMessage "+h)
	}
}

func TestMessageErrorsWrapSectionName(t *testing.T) {
	var m Message
	err := m.Unmarshal(hx("00 53 74 c1 05 02 a3 0161 40"))
	if err == nil || !errors.Is(err, ErrMalformed) || !bytes.Contains([]byte(err.Error()), []byte("application-properties")) {
		t.Fatalf("error %v does not name the section", err)
	}
}

func TestMessageErrorOffset(t *testing.T) {
	var m Message
	err := m.Unmarshal(hx("00 53 75 a0 00 ff"))
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("at byte 5:")) {
		t.Fatalf("error %v does not give the section's offset 5", err)
	}
}
