package wire

import (
	"bytes"
	"testing"

	amqp "github.com/Azure/go-amqp"
)

// The benchmark message: what an RPC call or a 1 KiB test message looks like on the
// wire — properties with message-id, to and reply-to, two application properties and
// one data section of 1 KiB. benchGoAMQPMessage is the same message for go-amqp.
var benchPayload = bytes.Repeat([]byte("0123456789abcdef"), 64)

func benchMessage() *Message {
	return &Message{
		Properties: &Properties{
			MessageID: "id-0000000001",
			To:        "queue/bench",
			ReplyTo:   "reply/bench",
		},
		ApplicationProperties: map[string]any{"method": "echo", "seq": int64(42)},
		Data:                  [][]byte{benchPayload},
	}
}

func benchGoAMQPMessage() *amqp.Message {
	to, replyTo := "queue/bench", "reply/bench"
	return &amqp.Message{
		Properties: &amqp.MessageProperties{
			MessageID: "id-0000000001",
			To:        &to,
			ReplyTo:   &replyTo,
		},
		ApplicationProperties: map[string]any{"method": "echo", "seq": int64(42)},
		Data:                  [][]byte{benchPayload},
	}
}

func benchTransfer() *Transfer {
	return &Transfer{
		Handle:        0,
		DeliveryID:    ptr(uint32(1)),
		DeliveryTag:   []byte{0, 0, 0, 0, 0, 0, 0, 1},
		MessageFormat: ptr(uint32(0)),
	}
}

func mustMessage(b *testing.B) []byte {
	enc, err := benchMessage().AppendTo(nil)
	if err != nil {
		b.Fatal(err)
	}
	return enc
}

// BenchmarkTransferEncode appends a whole transfer frame (header, performative, the
// already encoded 1 KiB message as payload) to a reused buffer: the send path once a
// message is encoded.
func BenchmarkTransferEncode(b *testing.B) {
	msg := mustMessage(b)
	tr := benchTransfer()
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	first, _ := AppendFrame(nil, FrameAMQP, 0, tr, msg)
	b.SetBytes(int64(len(first)))
	for b.Loop() {
		var err error
		buf, err = AppendFrame(buf[:0], FrameAMQP, 0, tr, msg)
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTransferDecode parses the frame header and decodes the transfer; the payload
// is returned aliasing the frame, not decoded.
func BenchmarkTransferDecode(b *testing.B) {
	frame, err := AppendFrame(nil, FrameAMQP, 0, benchTransfer(), mustMessage(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		h, err := ParseFrameHeader(frame, 1<<20)
		if err != nil {
			b.Fatal(err)
		}
		p, rest, err := DecodePerformative(frame[int(h.DataOff)*4 : h.Size])
		if err != nil || len(rest) == 0 {
			b.Fatal(err)
		}
		if p.(*Transfer).DeliveryID == nil {
			b.Fatal("no delivery-id")
		}
	}
}

// BenchmarkTransferMessageEncode encodes the message straight into the frame after the
// performative: the whole send path.
func BenchmarkTransferMessageEncode(b *testing.B) {
	m := benchMessage()
	tr := benchTransfer()
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	for b.Loop() {
		var off int
		var err error
		buf, off = FrameStart(buf[:0], FrameAMQP, 0)
		if buf, err = tr.AppendTo(buf); err != nil {
			b.Fatal(err)
		}
		if buf, err = m.AppendTo(buf); err != nil {
			b.Fatal(err)
		}
		buf = FrameEnd(buf, off)
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkTransferMessageDecode decodes the frame and then the message it carries: the
// whole receive path.
func BenchmarkTransferMessageDecode(b *testing.B) {
	frame, err := AppendFrame(nil, FrameAMQP, 0, benchTransfer(), mustMessage(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		h, err := ParseFrameHeader(frame, 1<<20)
		if err != nil {
			b.Fatal(err)
		}
		_, rest, err := DecodePerformative(frame[int(h.DataOff)*4 : h.Size])
		if err != nil {
			b.Fatal(err)
		}
		var m Message
		if err := m.Unmarshal(rest); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMessageEncode appends the message to a reused buffer.
func BenchmarkMessageEncode(b *testing.B) {
	m := benchMessage()
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	b.SetBytes(int64(len(mustMessage(b))))
	for b.Loop() {
		var err error
		if buf, err = m.AppendTo(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMessageEncodeNewBuffer appends the message to a nil slice, so each encoding
// allocates its buffer as go-amqp's MarshalBinary does.
func BenchmarkMessageEncodeNewBuffer(b *testing.B) {
	m := benchMessage()
	b.ReportAllocs()
	b.SetBytes(int64(len(mustMessage(b))))
	for b.Loop() {
		if _, err := m.AppendTo(nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMessageDecode(b *testing.B) {
	enc := mustMessage(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(enc)))
	for b.Loop() {
		var m Message
		if err := m.Unmarshal(enc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGoAMQPMessageMarshal(b *testing.B) {
	m := benchGoAMQPMessage()
	enc, err := m.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(enc)))
	for b.Loop() {
		if _, err := m.MarshalBinary(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGoAMQPMessageUnmarshal(b *testing.B) {
	enc, err := benchGoAMQPMessage().MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(enc)))
	for b.Loop() {
		var m amqp.Message
		if err := m.UnmarshalBinary(enc); err != nil {
			b.Fatal(err)
		}
	}
}

// TestBenchmarkMessagesAreTheSame makes sure the two benchmarks encode the same
// message: each side decodes the other's bytes into the same fields. The lengths differ
// by 12 bytes: go-amqp always writes the properties list and the application-properties
// map in their 32-bit forms, this package in the smallest form.
func TestBenchmarkMessagesAreTheSame(t *testing.T) {
	ours, err := benchMessage().AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := benchGoAMQPMessage().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(ours) != 1108 || len(theirs) != 1120 {
		t.Fatalf("encodings of %d and %d bytes, want 1108 and 1120", len(ours), len(theirs))
	}
	var g amqp.Message
	if err := g.UnmarshalBinary(ours); err != nil {
		t.Fatalf("go-amqp decoding ours: %v", err)
	}
	want := benchGoAMQPMessage()
	if g.Properties.MessageID != want.Properties.MessageID || *g.Properties.To != *want.Properties.To ||
		*g.Properties.ReplyTo != *want.Properties.ReplyTo || !equalStrict(g.ApplicationProperties, want.ApplicationProperties) ||
		!equalStrict(g.Data, want.Data) {
		t.Fatalf("go-amqp reads ours as %#v", &g)
	}
	var m Message
	if err := m.Unmarshal(theirs); err != nil {
		t.Fatalf("decoding go-amqp's encoding: %v", err)
	}
	if !equalStrict(&m, benchMessage()) {
		t.Fatalf("go-amqp's encoding decodes as %#v", &m)
	}
}
