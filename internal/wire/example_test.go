package wire_test

import (
	"fmt"

	"github.com/amqp1kit/amqp1kit/internal/wire"
)

func ExampleAppendAny() {
	b, err := wire.AppendAny(nil, []any{uint64(1), "hi", wire.Symbol("sym"), nil})
	if err != nil {
		panic(err)
	}
	fmt.Printf("% x\n", b)

	v, err := wire.NewDecoder(b).ReadAny()
	if err != nil {
		panic(err)
	}
	fmt.Printf("%#v\n", v)
	// Output:
	// c0 0d 04 53 01 a1 02 68 69 a3 03 73 79 6d 40
	// []interface {}{0x1, "hi", "sym", interface {}(nil)}
}

func ExampleAppendFrame() {
	id, format := uint32(7), uint32(0)
	t := &wire.Transfer{Handle: 1, DeliveryID: &id, DeliveryTag: []byte{7}, MessageFormat: &format, Settled: true}
	payload, _ := (&wire.Message{Value: "hello", HasValue: true}).AppendTo(nil)

	frame, err := wire.AppendFrame(nil, wire.FrameAMQP, 0, t, payload)
	if err != nil {
		panic(err)
	}
	fmt.Printf("% x\n", frame)

	h, err := wire.ParseFrameHeader(frame, 65536)
	if err != nil {
		panic(err)
	}
	p, rest, err := wire.DecodePerformative(frame[int(h.DataOff)*4 : h.Size])
	if err != nil {
		panic(err)
	}
	tr := p.(*wire.Transfer)
	fmt.Println(h.Size, h.Channel, tr.Handle, *tr.DeliveryID, tr.Settled, len(rest))
	// Output:
	// 00 00 00 21 02 00 00 00 00 53 14 c0 0a 05 52 01 52 07 a0 01 07 43 41 00 53 77 a1 05 68 65 6c 6c 6f
	// 33 0 1 7 true 10
}

func ExampleMessage() {
	m := &wire.Message{
		Header:                &wire.Header{Durable: true},
		Properties:            &wire.Properties{MessageID: "m-1", To: "queue/a", ReplyTo: "reply/a"},
		ApplicationProperties: map[string]any{"method": "echo"},
		Data:                  [][]byte{[]byte("payload")},
	}
	b, err := m.AppendTo(nil)
	if err != nil {
		panic(err)
	}

	var back wire.Message
	if err := back.Unmarshal(b); err != nil {
		panic(err)
	}
	fmt.Println(len(b), back.Header.Durable, back.Properties.MessageID, back.Properties.To,
		back.ApplicationProperties["method"], string(back.Data[0]))

	// An intermediary only needs the header and the properties.
	h, p, err := wire.ScanMessage(b)
	if err != nil {
		panic(err)
	}
	fmt.Println(h.Durable, p.To)
	// Output:
	// 70 true m-1 queue/a echo payload
	// true queue/a
}
