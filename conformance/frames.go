package conformance

import (
	"crypto/rand"
	"fmt"
	"net/url"
	"time"

	"github.com/amqp1kit/amqp1kit/internal/frameclient"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// frames is one connection of a case that writes frames by hand (internal/frameclient):
// for what go-amqp hides or does its own way, such as the exact credit an intermediary
// grants, the settle modes it answers with, or a drain sent with no credit. It has begun
// one session on channel 0.
type frames struct {
	*frameclient.Conn
	t     testingT
	open  *wire.Open  // the intermediary's open
	begin *wire.Begin // and its begin
	next  uint32      // the next handle to use
	// local maps the intermediary's handle of each link to the case's: flows and
	// transfers from the intermediary carry its own.
	local map[uint32]uint32
	outID uint32 // the session's next outgoing transfer id
	tag   uint64
}

// connectFrames opens a hand-written connection to h (SASL PLAIN when its URL has
// credentials, the plain AMQP header otherwise) and begins a session.
func connectFrames(t testingT, h *Harness) *frames {
	t.Helper()
	c := dialFrames(t, h)
	b, err := c.Begin(0, &wire.Begin{NextOutgoingID: 0, IncomingWindow: 5000, OutgoingWindow: 5000, HandleMax: 1023})
	if err != nil {
		t.Fatalf("begin on %s: %v", h.Name, err)
	}
	c.begin = b
	return c
}

// dialFrames connects and exchanges open frames, no session.
func dialFrames(t testingT, h *Harness) *frames {
	t.Helper()
	u, err := url.Parse(h.URL)
	if err != nil {
		t.Fatalf("harness URL %q: %v", h.URL, err)
	}
	fc, err := frameclient.Dial(u.Host)
	if err != nil {
		t.Fatalf("connect to %s: %v", h.Name, err)
	}
	t.Cleanup(func() { fc.Close() })
	if d, ok := caseContext(t).Deadline(); ok {
		fc.Timeout = time.Until(d)
	}
	c := &frames{Conn: fc, t: t, local: map[uint32]uint32{}}
	o := &wire.Open{ContainerID: "conformance-" + randomHex(), MaxFrameSize: 65536, ChannelMax: 15}
	if u.User != nil {
		pass, _ := u.User.Password()
		_, c.open, err = fc.OpenSASL("PLAIN", []byte("\x00"+u.User.Username()+"\x00"+pass), o)
	} else {
		c.open, err = fc.Open(o)
	}
	if err != nil {
		t.Fatalf("open a connection to %s: %v", h.Name, err)
	}
	return c
}

func randomHex() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x", b)
}

// attach sends a and returns the intermediary's attach. The handle is chosen here.
func (c *frames) attach(a *wire.Attach) *wire.Attach {
	c.t.Helper()
	a.Handle = c.next
	c.next++
	if a.Name == "" {
		a.Name = "conformance-link-" + randomHex()
	}
	peer, err := c.Attach(0, a)
	if err != nil {
		c.t.Fatalf("attach %s: %v", a.Name, err)
	}
	c.local[peer.Handle] = a.Handle
	return peer
}

// receiverLink attaches a link on which the intermediary sends from addr.
func (c *frames) receiverLink(addr string) (handle uint32, peer *wire.Attach) {
	c.t.Helper()
	handle = c.next
	peer = c.attach(&wire.Attach{Role: wire.RoleReceiver, SndSettleMode: wire.SenderSettleModeMixed,
		Source: &wire.Source{Address: addr}, Target: &wire.Target{}})
	return handle, peer
}

// senderLink attaches a link on which the client sends to addr.
func (c *frames) senderLink(addr string, mode wire.SenderSettleMode) (handle uint32, peer *wire.Attach) {
	c.t.Helper()
	handle = c.next
	zero := uint32(0)
	peer = c.attach(&wire.Attach{Role: wire.RoleSender, SndSettleMode: mode, Source: &wire.Source{},
		Target: &wire.Target{Address: addr}, InitialDeliveryCount: &zero})
	return handle, peer
}

// flow sends a link flow for handle: the receiver's delivery-count and credit.
func (c *frames) flow(handle, deliveryCount, credit uint32, drain bool) {
	c.t.Helper()
	next := uint32(0)
	if err := c.Write(0, &wire.Flow{NextIncomingID: &next, IncomingWindow: 5000, NextOutgoingID: c.outID,
		OutgoingWindow: 5000, Handle: &handle, DeliveryCount: &deliveryCount, LinkCredit: &credit, Drain: drain}); err != nil {
		c.t.Fatalf("flow: %v", err)
	}
}

// linkFlow waits up to d for a flow about the case's handle; nil when none comes.
func (c *frames) linkFlow(handle uint32, d time.Duration) *wire.Flow {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil
		}
		f, err := c.Quiet(left)
		if err != nil {
			c.t.Fatalf("waiting for a flow: %v", err)
		}
		if f.Body == nil {
			return nil
		}
		if fl, ok := f.Body.(*wire.Flow); ok && fl.Handle != nil && c.local[*fl.Handle] == handle {
			return fl
		}
		if _, ok := f.Body.(*wire.Flow); !ok {
			c.t.Fatalf("waiting for a flow, got %s", frameclient.Describe(f))
		}
	}
}

// linkFlows reads the flows that come within d and returns the last one of each link,
// by the case's handle.
func (c *frames) linkFlows(d time.Duration) map[uint32]*wire.Flow {
	c.t.Helper()
	out := map[uint32]*wire.Flow{}
	deadline := time.Now().Add(d)
	for left := d; left > 0; left = time.Until(deadline) {
		f, err := c.Quiet(left)
		if err != nil {
			c.t.Fatalf("waiting for flows: %v", err)
		}
		if f.Body == nil {
			break
		}
		fl, ok := f.Body.(*wire.Flow)
		if !ok {
			c.t.Fatalf("waiting for flows, got %s", frameclient.Describe(f))
		}
		if fl.Handle != nil {
			out[c.local[*fl.Handle]] = fl
		}
	}
	return out
}

// transfer sends one message on handle, settled or not, and returns its delivery-id.
func (c *frames) transfer(handle uint32, m *wire.Message, settled bool) uint32 {
	c.t.Helper()
	payload, err := m.AppendTo(nil)
	if err != nil {
		c.t.Fatalf("encode a message: %v", err)
	}
	id := c.outID
	c.outID++
	c.tag++
	format := uint32(0)
	tag := []byte(fmt.Sprint(c.tag))
	if err := c.WriteTransfer(0, &wire.Transfer{Handle: handle, DeliveryID: &id, DeliveryTag: tag,
		MessageFormat: &format, Settled: settled}, payload); err != nil {
		c.t.Fatalf("transfer: %v", err)
	}
	return id
}

// delivery waits for the next transfer, skipping flows, and decodes its message.
func (c *frames) delivery() (*wire.Transfer, *wire.Message) {
	c.t.Helper()
	tr, f, err := frameclient.Expect[*wire.Transfer](c.Conn)
	if err != nil {
		c.t.Fatalf("%v", err)
	}
	m := new(wire.Message)
	if err := m.Unmarshal(f.Payload); err != nil {
		c.t.Fatalf("decode the message of a transfer: %v", err)
	}
	return tr, m
}

// expect reads frames until one of type T, skipping flows; anything else fails the case.
func expect[T wire.Marshaler](c *frames) T {
	c.t.Helper()
	v, _, err := frameclient.Expect[T](c.Conn)
	if err != nil {
		c.t.Fatalf("%v", err)
	}
	return v
}

// textMessage is a message with a data body.
func textMessage(body string) *wire.Message { return &wire.Message{Data: [][]byte{[]byte(body)}} }

func u32(v uint32) *uint32 { return &v }

// openFrames connects as dialFrames does but with the client's open o, and begins no
// session.
func openFrames(t testingT, h *Harness, o *wire.Open) *frames {
	t.Helper()
	u, err := url.Parse(h.URL)
	if err != nil {
		t.Fatalf("harness URL %q: %v", h.URL, err)
	}
	fc, err := frameclient.Dial(u.Host)
	if err != nil {
		t.Fatalf("connect to %s: %v", h.Name, err)
	}
	t.Cleanup(func() { fc.Close() })
	if d, ok := caseContext(t).Deadline(); ok {
		if fc.Timeout = time.Until(d); fc.Timeout <= 0 {
			t.Fatalf("the case's time is up")
		}
	}
	c := &frames{Conn: fc, t: t, local: map[uint32]uint32{}}
	if u.User != nil {
		pass, _ := u.User.Password()
		_, c.open, err = fc.OpenSASL("PLAIN", []byte("\x00"+u.User.Username()+"\x00"+pass), o)
	} else {
		c.open, err = fc.Open(o)
	}
	if err != nil {
		t.Fatalf("open a connection to %s: %v", h.Name, err)
	}
	return c
}

// connectFramesAs connects as connectFrames does, with the given container-id.
func connectFramesAs(t testingT, h *Harness, containerID string) *frames {
	t.Helper()
	c := openFrames(t, h, &wire.Open{ContainerID: containerID, MaxFrameSize: 65536, ChannelMax: 15})
	b, err := c.Begin(0, &wire.Begin{NextOutgoingID: 0, IncomingWindow: 5000, OutgoingWindow: 5000, HandleMax: 1023})
	if err != nil {
		t.Fatalf("begin on %s: %v", h.Name, err)
	}
	c.begin = b
	return c
}

// saslExchange sends the SASL header to h, reads the mechanisms offered and answers
// with mech and resp; it returns the mechanisms and the outcome.
func saslExchange(t testingT, h *Harness, mech wire.Symbol, resp []byte) (*wire.SASLMechanisms, *wire.SASLOutcome) {
	t.Helper()
	u, err := url.Parse(h.URL)
	if err != nil {
		t.Fatalf("harness URL %q: %v", h.URL, err)
	}
	fc, err := frameclient.Dial(u.Host)
	if err != nil {
		t.Fatalf("connect to %s: %v", h.Name, err)
	}
	defer fc.Close()
	mechs, outcome, err := fc.SASL(mech, resp)
	if err != nil {
		t.Fatalf("SASL %s with %s: %v", mech, h.Name, err)
	}
	return mechs, outcome
}

// refused sends a, which the intermediary must refuse: it returns the attach that
// answers it and the detach that follows.
func (c *frames) refused(a *wire.Attach) (*wire.Attach, *wire.Detach) {
	c.t.Helper()
	peer := c.attach(a)
	return peer, expect[*wire.Detach](c)
}

// settle sends the receiver's settled disposition of delivery id with state.
func (c *frames) settle(id uint32, state wire.DeliveryState) {
	c.t.Helper()
	if err := c.Write(0, &wire.Disposition{Role: wire.RoleReceiver, First: id, Settled: true, State: state}); err != nil {
		c.t.Fatalf("disposition: %v", err)
	}
}

// detach detaches the case's link handle (closed) and waits for the answer, passing
// over the flows, transfers and dispositions that come before it (qpidd settles a
// link's unsettled deliveries before it answers).
func (c *frames) detach(handle uint32) {
	c.t.Helper()
	if err := c.Write(0, &wire.Detach{Handle: handle, Closed: true}); err != nil {
		c.t.Fatalf("detach: %v", err)
	}
	for {
		f, err := c.Next()
		if err != nil {
			c.t.Fatalf("waiting for the answer to a detach: %v", err)
		}
		switch b := f.Body.(type) {
		case *wire.Detach:
			if c.local[b.Handle] == handle {
				return
			}
		case *wire.Flow, *wire.Transfer, *wire.Disposition:
		default:
			c.t.Fatalf("waiting for the answer to a detach, got %s", frameclient.Describe(f))
		}
	}
}

// closeConn closes the connection with a close frame, without detaching its links or
// ending its session, and waits for the intermediary's close.
func (c *frames) closeConn() {
	c.t.Helper()
	if err := c.Write(0, &wire.Close{}); err != nil {
		c.t.Fatalf("close: %v", err)
	}
	for {
		f, err := c.Next()
		if err != nil {
			c.t.Fatalf("waiting for the close: %v", err)
		}
		if _, ok := f.Body.(*wire.Close); ok {
			return
		}
	}
}

// rawDelivery waits for the next transfer, skipping flows, and returns it with the
// message bytes it carried (one frame: cases send small messages).
func (c *frames) rawDelivery() (*wire.Transfer, []byte) {
	c.t.Helper()
	tr, f, err := frameclient.Expect[*wire.Transfer](c.Conn)
	if err != nil {
		c.t.Fatalf("%v", err)
	}
	return tr, f.Payload
}

// deliveryWithin returns the next transfer that comes within d with its message,
// skipping flows, or nil when none comes.
func (c *frames) deliveryWithin(d time.Duration) (*wire.Transfer, *wire.Message) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for left := d; left > 0; left = time.Until(deadline) {
		f, err := c.Quiet(left)
		if err != nil {
			c.t.Fatalf("waiting for a transfer: %v", err)
		}
		switch b := f.Body.(type) {
		case nil:
			return nil, nil
		case *wire.Flow:
			continue
		case *wire.Transfer:
			m := new(wire.Message)
			if err := m.Unmarshal(f.Payload); err != nil {
				c.t.Fatalf("decode the message of a transfer: %v", err)
			}
			return b, m
		default:
			c.t.Fatalf("waiting for a transfer, got %s", frameclient.Describe(f))
		}
	}
	return nil, nil
}
