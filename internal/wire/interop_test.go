package wire

import (
	"bytes"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
)

// TestGoAMQPInterop checks the message codec against an independent implementation:
// go-amqp decodes what this package encodes and the other way round.
func TestGoAMQPInterop(t *testing.T) {
	to, subject, replyTo, ct := "q", "subj", "r", "text/plain"
	created := time.UnixMilli(1700000000000).UTC()
	theirs := &amqp.Message{
		Header:                &amqp.MessageHeader{Durable: true, Priority: 7, TTL: 5 * time.Second, DeliveryCount: 2},
		Annotations:           amqp.Annotations{"x-opt-a": "b", "x-opt-n": int32(1)},
		Properties:            &amqp.MessageProperties{MessageID: uint64(9), To: &to, Subject: &subject, ReplyTo: &replyTo, CorrelationID: []byte{1}, ContentType: &ct, CreationTime: &created},
		ApplicationProperties: map[string]any{"s": "v", "i": int32(-5), "l": int64(1 << 40), "b": true, "d": 1.25, "t": created, "u": amqp.UUID(uuidFixture)},
		Data:                  [][]byte{[]byte("one"), []byte("two")},
		Footer:                amqp.Annotations{"x-f": uint64(1)},
	}
	enc, err := theirs.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var m Message
	if err := m.Unmarshal(enc); err != nil {
		t.Fatalf("decoding go-amqp's message: %v\n% x", err, enc)
	}
	if !m.Header.Durable || m.Header.Priority == nil || *m.Header.Priority != 7 || m.Header.TTL != 5000 || m.Header.DeliveryCount != 2 {
		t.Errorf("header %#v", m.Header)
	}
	if m.MessageAnnotations[Symbol("x-opt-a")] != "b" || m.MessageAnnotations[Symbol("x-opt-n")] != int32(1) {
		t.Errorf("message annotations %#v", m.MessageAnnotations)
	}
	p := m.Properties
	if p.MessageID != uint64(9) || p.To != "q" || p.Subject != "subj" || p.ReplyTo != "r" ||
		!bytes.Equal(p.CorrelationID.([]byte), []byte{1}) || p.ContentType != "text/plain" || !p.CreationTime.Equal(created) {
		t.Errorf("properties %#v", p)
	}
	wantAP := map[string]any{"s": "v", "i": int32(-5), "l": int64(1 << 40), "b": true, "d": 1.25, "t": created, "u": uuidFixture}
	if !equalStrict(m.ApplicationProperties, wantAP) {
		t.Errorf("application properties %#v", m.ApplicationProperties)
	}
	if len(m.Data) != 2 || string(m.Data[1]) != "two" {
		t.Errorf("data %q", m.Data)
	}
	if m.Footer[Symbol("x-f")] != uint64(1) {
		t.Errorf("footer %#v", m.Footer)
	}

	// And back: go-amqp reads ours.
	ours := fixtureMessage()
	ours.DeliveryAnnotations = nil // go-amqp keeps them, but compare the common case
	b, err := ours.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	var g amqp.Message
	if err := g.UnmarshalBinary(b); err != nil {
		t.Fatalf("go-amqp decoding ours: %v", err)
	}
	if g.Properties == nil || *g.Properties.To != ours.Properties.To || g.Properties.MessageID != "id-1" ||
		g.Properties.CorrelationID != amqp.UUID(uuidFixture) || *g.Properties.GroupSequence != 7 {
		t.Errorf("go-amqp read properties %#v", g.Properties)
	}
	if g.Header == nil || !g.Header.Durable || g.Header.TTL != time.Second {
		t.Errorf("go-amqp read header %#v", g.Header)
	}
	if g.ApplicationProperties["method"] != "echo" || g.ApplicationProperties["n"] != int64(3) {
		t.Errorf("go-amqp read application properties %#v", g.ApplicationProperties)
	}
	if len(g.Data) != 2 || string(g.Data[0]) != "hello" {
		t.Errorf("go-amqp read data %q", g.Data)
	}
	if g.Annotations["x-opt-jms-dest"] != int8(0) {
		t.Errorf("go-amqp read annotations %#v", g.Annotations)
	}
	// An amqp-value body both ways.
	gv := &amqp.Message{Value: map[string]any{"oslo.version": "2.0"}}
	enc, _ = gv.MarshalBinary()
	if err := m.Unmarshal(enc); err != nil || !m.HasValue {
		t.Fatalf("amqp-value from go-amqp: %v", err)
	}
	if v, _ := m.Value.(*Map).Get("oslo.version"); v != "2.0" {
		t.Errorf("amqp-value %#v", m.Value)
	}
	b, _ = (&Message{Value: []any{int64(1), "x"}, HasValue: true}).AppendTo(nil)
	g = amqp.Message{}
	if err := g.UnmarshalBinary(b); err != nil || !equalStrict(g.Value, []any{int64(1), "x"}) {
		t.Errorf("go-amqp read amqp-value %#v %v", g.Value, err)
	}
}

// TestGoAMQPNumericAnnotationKey documents a difference: go-amqp writes a numeric
// annotation key as a long (it refuses uint64 keys), where the specification says
// ulong. This package refuses such a message as malformed rather than guess.
func TestGoAMQPNumericAnnotationKey(t *testing.T) {
	enc, err := (&amqp.Message{Annotations: amqp.Annotations{int64(5): "x"}, Value: "v"}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(enc, hx("55 05")) {
		t.Fatalf("go-amqp no longer writes the key as a smalllong: % x", enc)
	}
	var m Message
	requireMalformed(t, m.Unmarshal(enc), "message annotations with a long key")
}
