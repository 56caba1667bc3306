package engine

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"

	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// linkPolicy is queuePolicy with a fixed credit for client senders on some
// addresses (0: none at all).
type linkPolicy struct {
	*queuePolicy
	credit map[string]uint32
}

func newLinkPolicy() *linkPolicy {
	return &linkPolicy{queuePolicy: newQueuePolicy(), credit: map[string]uint32{"no-credit": 0, "one-credit": 1}}
}

// Delivery settles without topping the credit up on the fixed-credit addresses.
func (p *linkPolicy) Delivery(l *Link, d *Delivery) {
	if _, ok := p.credit[l.Address()]; ok {
		if !d.Settled {
			d.Settle(&wire.Accepted{})
		}
		return
	}
	p.queuePolicy.Delivery(l, d)
}

func (p *linkPolicy) Attach(l *Link) error {
	if c, ok := p.credit[l.Address()]; ok && l.Role() == wire.RoleReceiver {
		if c == 0 {
			return nil
		}
		return l.SetCredit(c)
	}
	return p.queuePolicy.Attach(l)
}

// rawFrame builds a frame from a header's fields and a body, whatever they say.
func rawFrame(size uint32, doff, typ byte, ch uint16, body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, size)
	b = append(b, doff, typ, byte(ch>>8), byte(ch))
	return append(b, body...)
}

// frameWithBody wraps arbitrary body bytes in a frame of the right size.
func frameWithBody(typ byte, ch uint16, body []byte) []byte {
	return rawFrame(uint32(wire.FrameHeaderSize+len(body)), 2, typ, ch, body)
}

// badCase is one kind of bad input: the peer's script, which also reads what the
// server answers, and the log line the server must write.
type badCase struct {
	name   string
	opts   Options
	script func(t *testing.T, p *testPeer)
	log    []string
}

// closeAfter opens, begins, runs bad, and expects close with cond then the socket
// closed.
func closeAfter(cond wire.ErrCond, bad func(t *testing.T, p *testPeer)) func(t *testing.T, p *testPeer) {
	return func(t *testing.T, p *testPeer) {
		p.open()
		p.begin(0)
		bad(t, p)
		p.wantClose(cond)
		p.wantClosedSocket()
	}
}

// writeBytes is a bad step that writes b.
func writeBytes(b []byte) func(t *testing.T, p *testPeer) {
	return func(t *testing.T, p *testPeer) { _ = p.tryWrite(b) }
}

// survives checks that the connection still works after a session or link error:
// a new session begins on another channel and answers an echo.
func survives(t *testing.T, p *testPeer, ch uint16) {
	t.Helper()
	p.begin(ch)
	next := uint32(0)
	p.writeFrame(ch, &wire.Flow{NextIncomingID: &next, IncomingWindow: 100, OutgoingWindow: 100, Echo: true})
	readFrame[*wire.Flow](p)
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	attachFrame := encodeFrame(t, wire.FrameAMQP, 0, senderAttach("l", 0, "q"), nil)
	cases := []badCase{
		// --- connection errors ---
		{
			name: "frame-over-max-frame-size",
			opts: Options{MaxFrameSize: 4096},
			script: closeAfter(wire.ErrCondFramingError, func(t *testing.T, p *testPeer) {
				// A well-formed transfer one byte over the limit, refused from its header.
				p.attach(0, senderAttach("big", 0, "q"))
				readFrame[*wire.Flow](p)
				b := encodeFrame(t, wire.FrameAMQP, 0, &wire.Transfer{Handle: 0, DeliveryID: u32(0), DeliveryTag: []byte("t"), MessageFormat: u32(0)}, nil)
				b = append(b, make([]byte, 4097-len(b))...)
				binary.BigEndian.PutUint32(b, uint32(len(b)))
				_ = p.tryWrite(b)
			}),
			log: []string{"closing connection", "amqp:connection:framing-error", "frame of 4097 bytes exceeds max-frame-size 4096"},
		},
		{
			name:   "frame-size-huge",
			script: closeAfter(wire.ErrCondFramingError, writeBytes(rawFrame(math.MaxUint32, 2, 0, 0, nil))),
			log:    []string{"closing connection", "amqp:connection:framing-error", "exceeds max-frame-size"},
		},
		{
			name:   "garbage-after-open",
			script: closeAfter(wire.ErrCondFramingError, writeBytes([]byte("GARBAGE!GARBAGE!GARBAGE!"))),
			log:    []string{"closing connection", "amqp:connection:framing-error"},
		},
		{
			name:   "data-offset-below-2",
			script: closeAfter(wire.ErrCondFramingError, writeBytes(rawFrame(8, 1, 0, 0, nil))),
			log:    []string{"closing connection", "amqp:connection:framing-error", "data offset 1 below 2"},
		},
		{
			name:   "size-below-data-offset",
			script: closeAfter(wire.ErrCondFramingError, writeBytes(rawFrame(12, 4, 0, 0, []byte{0, 0, 0, 0}))),
			log:    []string{"closing connection", "amqp:connection:framing-error", "smaller than its data offset"},
		},
		{
			name:   "sasl-frame-after-open",
			script: closeAfter(wire.ErrCondFramingError, writeBytes(encodeFrame(t, wire.FrameSASL, 0, &wire.SASLInit{Mechanism: "PLAIN"}, nil))),
			log:    []string{"closing connection", "amqp:connection:framing-error", "frame type 1 after open"},
		},
		{
			name:   "unknown-frame-type",
			script: closeAfter(wire.ErrCondFramingError, writeBytes(frameWithBody(7, 0, []byte{0x00, 0x53, 0x13, 0x45}))),
			log:    []string{"closing connection", "amqp:connection:framing-error", "frame type 7 after open"},
		},
		{
			name: "malformed-performative",
			// begin: a list8 announcing 5 fields in 1 byte.
			script: closeAfter(wire.ErrCondDecodeError, writeBytes(frameWithBody(0, 0, []byte{0x00, 0x53, 0x11, 0xc0, 0x01, 0x05}))),
			log:    []string{"closing connection", "amqp:decode-error"},
		},
		{
			name: "performative-missing-mandatory-field",
			// attach with an empty list: name, handle and role are mandatory.
			script: closeAfter(wire.ErrCondDecodeError, writeBytes(frameWithBody(0, 0, []byte{0x00, 0x53, 0x12, 0x45}))),
			log:    []string{"closing connection", "amqp:decode-error"},
		},
		{
			name:   "unknown-descriptor",
			script: closeAfter(wire.ErrCondDecodeError, writeBytes(frameWithBody(0, 0, []byte{0x00, 0x53, 0x77, 0x45}))),
			log:    []string{"closing connection", "amqp:decode-error", "not a frame body"},
		},
		{
			name:   "body-not-described",
			script: closeAfter(wire.ErrCondDecodeError, writeBytes(frameWithBody(0, 0, []byte{0xa1, 0x03, 'a', 'b', 'c'}))),
			log:    []string{"closing connection", "amqp:decode-error"},
		},
		{
			name:   "message-section-as-performative",
			script: closeAfter(wire.ErrCondDecodeError, writeBytes(frameWithBody(0, 0, message(t, []byte("x"))))),
			log:    []string{"closing connection", "amqp:decode-error"},
		},
		{
			name:   "stray-bytes-after-performative",
			script: closeAfter(wire.ErrCondFramingError, writeBytes(frameWithBody(0, 0, append(bytes.Clone(attachFrame[8:]), 0x40, 0x40)))),
			log:    []string{"closing connection", "amqp:connection:framing-error", "stray bytes"},
		},
		{
			name: "frame-on-channel-without-session",
			script: closeAfter(wire.ErrCondFramingError, func(t *testing.T, p *testPeer) {
				p.writeFrame(3, senderAttach("l", 0, "q"))
			}),
			log: []string{"closing connection", "amqp:connection:framing-error", "channel 3, which has no session"},
		},
		{
			name: "begin-on-used-channel",
			script: closeAfter(wire.ErrCondIllegalState, func(t *testing.T, p *testPeer) {
				p.writeFrame(0, &wire.Begin{IncomingWindow: 10, OutgoingWindow: 10, HandleMax: 10})
			}),
			log: []string{"closing connection", "amqp:illegal-state", "already has a session"},
		},
		{
			name: "begin-with-remote-channel",
			script: closeAfter(wire.ErrCondIllegalState, func(t *testing.T, p *testPeer) {
				rc := uint16(0)
				p.writeFrame(1, &wire.Begin{RemoteChannel: &rc, IncomingWindow: 10, OutgoingWindow: 10, HandleMax: 10})
			}),
			log: []string{"closing connection", "amqp:illegal-state", "never began"},
		},
		{
			name:   "second-open",
			script: closeAfter(wire.ErrCondIllegalState, func(t *testing.T, p *testPeer) { p.writeFrame(0, peerOpen()) }),
			log:    []string{"closing connection", "amqp:illegal-state", "second open"},
		},
		{
			name: "first-frame-not-open",
			script: func(t *testing.T, p *testPeer) {
				p.writeHeader(wire.ProtoAMQP)
				p.wantHeader(wire.ProtoAMQP)
				p.writeFrame(0, &wire.Begin{IncomingWindow: 10, OutgoingWindow: 10, HandleMax: 10})
				p.wantOpen() // part 2.4.5: a close only follows an open
				p.wantClose(wire.ErrCondFramingError)
				p.wantClosedSocket()
			},
			log: []string{"closing connection", "amqp:connection:framing-error", "first frame must be open"},
		},
		{
			name: "first-frame-undecodable",
			script: func(t *testing.T, p *testPeer) {
				p.writeHeader(wire.ProtoAMQP)
				p.wantHeader(wire.ProtoAMQP)
				p.write(frameWithBody(0, 0, []byte{0x00, 0x53, 0x10, 0xd0, 0xff, 0xff, 0xff, 0xff}))
				p.wantOpen()
				p.wantClose(wire.ErrCondDecodeError)
				p.wantClosedSocket()
			},
			log: []string{"closing connection", "amqp:decode-error"},
		},
		{
			name: "first-frame-empty",
			script: func(t *testing.T, p *testPeer) {
				p.writeHeader(wire.ProtoAMQP)
				p.wantHeader(wire.ProtoAMQP)
				p.writeEmpty()
				p.wantOpen()
				p.wantClose(wire.ErrCondFramingError)
				p.wantClosedSocket()
			},
			log: []string{"closing connection", "amqp:connection:framing-error", "first frame must be open"},
		},

		// --- session errors: the session ends, the connection survives ---
		{
			name: "attach-on-used-handle",
			script: func(t *testing.T, p *testPeer) {
				p.open()
				p.begin(0)
				p.attach(0, senderAttach("a", 7, "q"))
				readFrame[*wire.Flow](p)
				p.writeFrame(0, senderAttach("b", 7, "q"))
				p.wantEnd(wire.ErrCondHandleInUse)
				p.writeFrame(0, &wire.End{})
				survives(t, p, 1)
			},
			log: []string{"ending session", "amqp:session:handle-in-use", "attach on handle 7"},
		},
		{
			name: "transfer-on-unattached-handle",
			script: func(t *testing.T, p *testPeer) {
				p.open()
				p.begin(0)
				p.writeTransfer(0, &wire.Transfer{Handle: 9, DeliveryID: u32(0), DeliveryTag: []byte("t"), MessageFormat: u32(0)}, message(t, []byte("x")))
				p.wantEnd(wire.ErrCondUnattachedHandle)
				p.writeFrame(0, &wire.End{})
				survives(t, p, 1)
			},
			log: []string{"ending session", "amqp:session:unattached-handle", "transfer on handle 9"},
		},
		{
			name: "flow-on-unattached-handle",
			script: func(t *testing.T, p *testPeer) {
				p.open()
				p.begin(0)
				p.writeFrame(0, linkFlow(4, 0, 10))
				p.wantEnd(wire.ErrCondUnattachedHandle)
				p.writeFrame(0, &wire.End{})
				survives(t, p, 0) // the channel is free again once both ends are sent
			},
			log: []string{"ending session", "amqp:session:unattached-handle", "flow for handle 4"},
		},
		{
			name: "detach-of-unattached-handle",
			script: func(t *testing.T, p *testPeer) {
				p.open()
				p.begin(0)
				p.writeFrame(0, &wire.Detach{Handle: 5, Closed: true})
				p.wantEnd(wire.ErrCondUnattachedHandle)
				p.writeFrame(0, &wire.End{})
				survives(t, p, 1)
			},
			log: []string{"ending session", "amqp:session:unattached-handle", "detach of handle 5"},
		},

		// --- link errors: the link is detached, the session survives ---
		{
			name: "transfer-without-credit",
			script: func(t *testing.T, p *testPeer) {
				p.open()
				p.begin(0)
				p.attach(0, senderAttach("s", 0, "no-credit"))
				p.writeTransfer(0, &wire.Transfer{Handle: 0, DeliveryID: u32(0), DeliveryTag: []byte("t"), MessageFormat: u32(0)}, message(t, []byte("x")))
				d := p.wantDetach(wire.ErrCondTransferLimitExceeded)
				if !d.Closed {
					t.Fatal("detach after a transfer-limit violation is not closing")
				}
				p.writeFrame(0, &wire.Detach{Handle: 0, Closed: true})
				survives(t, p, 1)
			},
			log: []string{"detaching link", "amqp:link:transfer-limit-exceeded"},
		},
		{
			name: "transfer-beyond-credit",
			script: func(t *testing.T, p *testPeer) {
				p.open()
				p.begin(0)
				p.attach(0, senderAttach("s", 0, "one-credit"))
				if f, _ := readFrame[*wire.Flow](p); f.LinkCredit == nil || *f.LinkCredit != 1 {
					t.Fatalf("flow %+v, want credit 1", f)
				}
				// The policy tops the credit up after a delivery: send both at once.
				b := encodeFrame(t, wire.FrameAMQP, 0, &wire.Transfer{Handle: 0, DeliveryID: u32(0), DeliveryTag: []byte("1"), MessageFormat: u32(0), Settled: true}, message(t, []byte("x")))
				b = append(b, encodeFrame(t, wire.FrameAMQP, 0, &wire.Transfer{Handle: 0, DeliveryID: u32(1), DeliveryTag: []byte("2"), MessageFormat: u32(0), Settled: true}, message(t, []byte("y")))...)
				p.write(b)
				for {
					f := p.next()
					if d, ok := f.Body.(*wire.Detach); ok {
						checkCond(t, "detach", d.Error, wire.ErrCondTransferLimitExceeded)
						break
					}
					if _, ok := f.Body.(*wire.Flow); !ok {
						t.Fatalf("got %v, want a flow or the detach", f)
					}
				}
			},
			log: []string{"detaching link", "amqp:link:transfer-limit-exceeded"},
		},
		{
			name: "credit-replay-by-rewinding-delivery-count",
			script: func(t *testing.T, p *testPeer) {
				p.open()
				p.begin(0)
				p.attach(0, senderAttach("s", 0, "one-credit"))
				readFrame[*wire.Flow](p)
				p.writeTransfer(0, &wire.Transfer{Handle: 0, DeliveryID: u32(0), DeliveryTag: []byte("1"), MessageFormat: u32(0), Settled: true}, message(t, []byte("x")))
				// The sender claims it has sent nothing yet, hoping for its credit back.
				p.writeFrame(0, linkFlow(0, 0, 0))
				p.writeTransfer(0, &wire.Transfer{Handle: 0, DeliveryID: u32(1), DeliveryTag: []byte("2"), MessageFormat: u32(0), Settled: true}, message(t, []byte("y")))
				p.wantDetach(wire.ErrCondTransferLimitExceeded)
			},
			log: []string{"detaching link", "amqp:link:transfer-limit-exceeded"},
		},
		{
			name: "oversized-message",
			opts: Options{MaxMessageSize: 1000, AnnounceMaxMessageSize: true},
			script: func(t *testing.T, p *testPeer) {
				p.open()
				p.begin(0)
				a := p.attach(0, senderAttach("s", 0, "q"))
				if a.MaxMessageSize != 1000 {
					t.Fatalf("attach max-message-size %d, want 1000", a.MaxMessageSize)
				}
				readFrame[*wire.Flow](p)
				p.writeTransfer(0, &wire.Transfer{Handle: 0, DeliveryID: u32(0), DeliveryTag: []byte("t"), MessageFormat: u32(0)}, make([]byte, 1001))
				p.wantDetach(wire.ErrCondMessageSizeExceeded)
				survives(t, p, 1)
			},
			log: []string{"detaching link", "amqp:link:message-size-exceeded", "max-message-size 1000"},
		},
		{
			name: "oversized-multi-frame-message",
			opts: Options{MaxMessageSize: 1000},
			script: func(t *testing.T, p *testPeer) {
				p.open()
				p.begin(0)
				p.attach(0, senderAttach("s", 0, "q"))
				readFrame[*wire.Flow](p)
				p.writeTransfer(0, &wire.Transfer{Handle: 0, DeliveryID: u32(0), DeliveryTag: []byte("t"), MessageFormat: u32(0), More: true}, make([]byte, 600))
				p.writeTransfer(0, &wire.Transfer{Handle: 0, More: true}, make([]byte, 600))
				p.writeTransfer(0, &wire.Transfer{Handle: 0}, make([]byte, 600)) // moot: the link is going
				p.wantDetach(wire.ErrCondMessageSizeExceeded)
				p.writeFrame(0, &wire.Detach{Handle: 0, Closed: true})
				survives(t, p, 1)
			},
			log: []string{"detaching link", "amqp:link:message-size-exceeded"},
		},
		{
			name: "transfer-to-a-receiving-client",
			script: func(t *testing.T, p *testPeer) {
				p.open()
				p.begin(0)
				p.attach(0, receiverAttach("r", 0, "q"))
				p.writeTransfer(0, &wire.Transfer{Handle: 0, DeliveryID: u32(0), DeliveryTag: []byte("t"), MessageFormat: u32(0)}, message(t, []byte("x")))
				p.wantDetach(wire.ErrCondIllegalState)
				survives(t, p, 1)
			},
			log: []string{"detaching link", "amqp:illegal-state"},
		},
		{
			name: "first-transfer-without-delivery-id",
			script: func(t *testing.T, p *testPeer) {
				p.open()
				p.begin(0)
				p.attach(0, senderAttach("s", 0, "q"))
				readFrame[*wire.Flow](p)
				p.writeTransfer(0, &wire.Transfer{Handle: 0}, message(t, []byte("x")))
				p.wantDetach(wire.ErrCondInvalidField)
				survives(t, p, 1)
			},
			log: []string{"detaching link", "amqp:invalid-field", "without delivery-id"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			logs, logger := newLogSink()
			opts := tc.opts
			opts.Logger = logger
			pol := newLinkPolicy()
			srv, url := startServer(t, pol, &opts)
			by := newBystander(t, url, nil)
			p := dialPeer(t, url)
			tc.script(t, p)
			logs.want(t, tc.log...)
			by.check()
			// Closed pairs with Opened: a connection the handler never saw opened is
			// never reported closed.
			p.nc.Close()
			waitFor(t, "the bad connection to go", func() bool { return len(srv.Conns()) == 1 })
			pol.mu.Lock()
			opened, closed := pol.opened, len(pol.closed)
			pol.mu.Unlock()
			if closed > opened-1 { // the bystander is still open
				t.Fatalf("handler saw %d connections opened and %d closed", opened, closed)
			}
		})
	}
}
