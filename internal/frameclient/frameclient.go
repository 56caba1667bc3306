// Package frameclient is an AMQP 1.0 client that writes and reads frames one at a time,
// built on internal/wire. It has no state machine of its own: the caller writes the
// performatives it wants, in the order it wants, and reads what the peer answers. Tests
// use it where a full client (go-amqp, Proton) would hide the exact frames: what an
// intermediary answers to a given attach or flow, which credit it grants and when,
// which fields it echoes, and what it does with input no well-behaved client sends.
//
// Every read is bounded by the connection's Timeout, so a peer that never answers
// fails the read instead of hanging the test. OpenIdle, Receivers and ManyReceivers
// open connections that then stay idle at no cost to the client, to measure what an
// intermediary pays for many clients. The engine's own tests read and write through
// it too: it is the project's one frame-level client.
package frameclient

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// DefaultTimeout bounds each read of a Conn whose Timeout is zero.
const DefaultTimeout = 10 * time.Second

// Conn is one client connection.
type Conn struct {
	// Timeout bounds each read (DefaultTimeout when zero).
	Timeout time.Duration
	// KeepEmpty makes Next return empty (keep-alive) frames instead of skipping them.
	KeepEmpty bool

	nc  net.Conn
	rd  *bufio.Reader
	buf []byte
	// held are flows Expect passed over, which Next and Quiet return first.
	held []Frame
}

// Frame is one frame read from the peer.
type Frame struct {
	// Type is wire.FrameAMQP or wire.FrameSASL.
	Type byte
	// Channel is the frame's channel.
	Channel uint16
	// Body is the performative (a wire.Performative or wire.SASLFrame), nil for an
	// empty frame.
	Body wire.Marshaler
	// Payload is what followed a transfer's performative: message bytes.
	Payload []byte
	// Size is the whole frame's size, its header included.
	Size uint32
}

// String names the frame and its channel, with the performative's fields and the
// payload's length.
func (f Frame) String() string {
	if f.Body == nil {
		return fmt.Sprintf("ch %d empty frame", f.Channel)
	}
	s := fmt.Sprintf("ch %d %T %+v", f.Channel, f.Body, f.Body)
	if len(f.Payload) > 0 {
		s += fmt.Sprintf(" with %d payload bytes", len(f.Payload))
	}
	return s
}

// Dial connects to addr (host:port) over TCP. No bytes are exchanged.
func Dial(addr string) (*Conn, error) {
	nc, err := net.DialTimeout("tcp", addr, DefaultTimeout)
	if err != nil {
		return nil, err
	}
	return New(nc), nil
}

// New wraps an established connection.
func New(nc net.Conn) *Conn { return &Conn{nc: nc, rd: bufio.NewReader(nc)} }

// NetConn returns the underlying connection.
func (c *Conn) NetConn() net.Conn { return c.nc }

// Close closes the connection without a close frame.
func (c *Conn) Close() error { return c.nc.Close() }

func (c *Conn) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

// WriteRaw writes b as it is.
func (c *Conn) WriteRaw(b []byte) error {
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.timeout()))
	_, err := c.nc.Write(b)
	return err
}

// WriteHeader writes the protocol header of layer id (wire.ProtoAMQP, wire.ProtoSASL...).
func (c *Conn) WriteHeader(id byte) error {
	h := wire.ProtocolHeader{ID: id, Major: 1, Minor: 0, Revision: 0}.Bytes()
	return c.WriteRaw(h[:])
}

// ReadHeader reads the peer's 8-byte protocol header.
func (c *Conn) ReadHeader() (wire.ProtocolHeader, error) {
	var b [8]byte
	_ = c.nc.SetReadDeadline(time.Now().Add(c.timeout()))
	if _, err := io.ReadFull(c.rd, b[:]); err != nil {
		return wire.ProtocolHeader{}, err
	}
	return wire.ParseProtocolHeader(b[:])
}

// Write sends body as an AMQP frame on channel ch.
func (c *Conn) Write(ch uint16, body wire.Marshaler) error {
	return c.write(wire.FrameAMQP, ch, body, nil)
}

// WriteTransfer sends a transfer with its payload on channel ch.
func (c *Conn) WriteTransfer(ch uint16, tr *wire.Transfer, payload []byte) error {
	return c.write(wire.FrameAMQP, ch, tr, payload)
}

// WriteSASL sends body as a SASL frame.
func (c *Conn) WriteSASL(body wire.Marshaler) error {
	return c.write(wire.FrameSASL, 0, body, nil)
}

// WriteEmpty sends an empty (keep-alive) AMQP frame.
func (c *Conn) WriteEmpty() error {
	return c.WriteRaw([]byte{0, 0, 0, 8, 2, wire.FrameAMQP, 0, 0})
}

func (c *Conn) write(typ byte, ch uint16, body wire.Marshaler, payload []byte) error {
	b, err := wire.AppendFrame(c.buf[:0], typ, ch, body, payload)
	if err != nil {
		return err
	}
	c.buf = b
	return c.WriteRaw(b)
}

// Next reads the next frame, skipping empty frames unless KeepEmpty is set. Flows that
// Expect passed over come first.
func (c *Conn) Next() (Frame, error) {
	if f, ok := c.unhold(); ok {
		return f, nil
	}
	for {
		f, err := c.next()
		if err != nil || f.Body != nil || c.KeepEmpty {
			return f, err
		}
	}
}

func (c *Conn) next() (Frame, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(c.timeout()))
	var hb [wire.FrameHeaderSize]byte
	if _, err := io.ReadFull(c.rd, hb[:]); err != nil {
		return Frame{}, err
	}
	h, err := wire.ParseFrameHeader(hb[:], 0)
	if err != nil {
		return Frame{}, err
	}
	rest := make([]byte, h.Size-wire.FrameHeaderSize)
	if _, err := io.ReadFull(c.rd, rest); err != nil {
		return Frame{}, err
	}
	body := rest[int(h.DataOff)*4-wire.FrameHeaderSize:]
	f := Frame{Type: h.Type, Channel: h.Channel, Size: h.Size}
	if len(body) == 0 {
		return f, nil
	}
	switch h.Type {
	case wire.FrameSASL:
		s, err := wire.DecodeSASLFrame(body)
		if err != nil {
			return f, err
		}
		f.Body = s
	default:
		p, payload, err := wire.DecodePerformative(body)
		if err != nil {
			return f, err
		}
		f.Body, f.Payload = p, payload
	}
	return f, nil
}

// Quiet reports the first frame the peer sends within d, or (Frame{}, nil) when it sends
// none (empty frames aside). A closed connection is an error.
func (c *Conn) Quiet(d time.Duration) (Frame, error) {
	if f, ok := c.unhold(); ok {
		return f, nil
	}
	deadline := time.Now().Add(d)
	for {
		_ = c.nc.SetReadDeadline(deadline)
		f, err := c.nextUntil()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return Frame{}, nil
		}
		if err != nil {
			return Frame{}, err
		}
		if f.Body != nil {
			return f, nil
		}
	}
}

// NextBefore reads the next frame, empty ones included, whose first byte must arrive
// before deadline (an error wrapping os.ErrDeadlineExceeded otherwise); the rest of
// the frame is read under the normal timeout. Flows that Expect passed over come
// first.
func (c *Conn) NextBefore(deadline time.Time) (Frame, error) {
	if f, ok := c.unhold(); ok {
		return f, nil
	}
	_ = c.nc.SetReadDeadline(deadline)
	return c.nextUntil()
}

// nextUntil waits for a frame's first byte under the deadline already set, then reads
// the frame whole under the normal timeout.
func (c *Conn) nextUntil() (Frame, error) {
	if _, err := c.rd.Peek(1); err != nil {
		return Frame{}, err
	}
	return c.next()
}

func (c *Conn) unhold() (Frame, bool) {
	if len(c.held) == 0 {
		return Frame{}, false
	}
	f := c.held[0]
	c.held = c.held[1:]
	return f, true
}

// Expect reads frames until one of type T arrives on any channel and returns it. When
// T is not a flow, flows that come first (intermediaries send them when they please)
// are held for the next Next or Quiet. Any other frame is an error that names it.
func Expect[T wire.Marshaler](c *Conn) (T, Frame, error) {
	var zero T
	if _, flows := any(zero).(*wire.Flow); flows {
		if f, ok := c.unhold(); ok {
			return f.Body.(T), f, nil
		}
	}
	for {
		f, err := c.next()
		if err != nil {
			return zero, f, fmt.Errorf("waiting for %T: %w", zero, err)
		}
		if v, ok := f.Body.(T); ok {
			return v, f, nil
		}
		if f.Body == nil {
			continue
		}
		if _, flow := f.Body.(*wire.Flow); flow {
			c.held = append(c.held, f)
			continue
		}
		return zero, f, fmt.Errorf("waiting for %T, got %s", zero, Describe(f))
	}
}

// Describe prints a frame with the fields that explain a surprise: the error of a
// detach, end or close, and the outcome of a disposition.
func Describe(f Frame) string {
	switch b := f.Body.(type) {
	case *wire.Detach:
		return fmt.Sprintf("ch %d detach handle=%d closed=%v error=%s", f.Channel, b.Handle, b.Closed, errString(b.Error))
	case *wire.End:
		return fmt.Sprintf("ch %d end error=%s", f.Channel, errString(b.Error))
	case *wire.Close:
		return fmt.Sprintf("close error=%s", errString(b.Error))
	case *wire.Disposition:
		return fmt.Sprintf("ch %d disposition first=%d settled=%v state=%T", f.Channel, b.First, b.Settled, b.State)
	}
	return f.String()
}

func errString(e *wire.Error) string {
	if e == nil {
		return "none"
	}
	return fmt.Sprintf("%s %q", e.Condition, e.Description)
}

// Open sends the plain AMQP header and o, and returns the peer's open. A peer that
// insists on SASL answers with the SASL header: use OpenSASL.
func (c *Conn) Open(o *wire.Open) (*wire.Open, error) {
	if err := c.WriteHeader(wire.ProtoAMQP); err != nil {
		return nil, err
	}
	if h, err := c.ReadHeader(); err != nil {
		return nil, err
	} else if h.ID != wire.ProtoAMQP {
		return nil, fmt.Errorf("the peer answered the AMQP header with %v", h)
	}
	return c.open(o)
}

// OpenSASL runs the SASL layer with mechanism mech and initial response resp, then
// sends the AMQP header and o. It returns the mechanisms the peer offered and its open.
func (c *Conn) OpenSASL(mech wire.Symbol, resp []byte, o *wire.Open) (*wire.SASLMechanisms, *wire.Open, error) {
	mechs, outcome, err := c.SASL(mech, resp)
	if err != nil {
		return mechs, nil, err
	}
	if outcome.Code != wire.SASLCodeOK {
		return mechs, nil, fmt.Errorf("sasl outcome %v", outcome.Code)
	}
	if err := c.WriteHeader(wire.ProtoAMQP); err != nil {
		return mechs, nil, err
	}
	if h, err := c.ReadHeader(); err != nil {
		return mechs, nil, err
	} else if h.ID != wire.ProtoAMQP {
		return mechs, nil, fmt.Errorf("the peer answered the AMQP header with %v", h)
	}
	peer, err := c.open(o)
	return mechs, peer, err
}

// SASL sends the SASL header, reads the offered mechanisms, sends an init with mech and
// resp, and returns the mechanisms and the outcome.
func (c *Conn) SASL(mech wire.Symbol, resp []byte) (*wire.SASLMechanisms, *wire.SASLOutcome, error) {
	if err := c.WriteHeader(wire.ProtoSASL); err != nil {
		return nil, nil, err
	}
	if h, err := c.ReadHeader(); err != nil {
		return nil, nil, err
	} else if h.ID != wire.ProtoSASL {
		return nil, nil, fmt.Errorf("the peer answered the SASL header with %v", h)
	}
	mechs, _, err := Expect[*wire.SASLMechanisms](c)
	if err != nil {
		return nil, nil, err
	}
	if err := c.WriteSASL(&wire.SASLInit{Mechanism: mech, InitialResponse: resp}); err != nil {
		return mechs, nil, err
	}
	outcome, _, err := Expect[*wire.SASLOutcome](c)
	return mechs, outcome, err
}

func (c *Conn) open(o *wire.Open) (*wire.Open, error) {
	if err := c.Write(0, o); err != nil {
		return nil, err
	}
	peer, _, err := Expect[*wire.Open](c)
	return peer, err
}

// Begin begins a session on channel ch with b and returns the peer's begin.
func (c *Conn) Begin(ch uint16, b *wire.Begin) (*wire.Begin, error) {
	if err := c.Write(ch, b); err != nil {
		return nil, err
	}
	peer, _, err := Expect[*wire.Begin](c)
	return peer, err
}

// Attach sends a and returns the peer's attach (skipping flows that come before it).
func (c *Conn) Attach(ch uint16, a *wire.Attach) (*wire.Attach, error) {
	if err := c.Write(ch, a); err != nil {
		return nil, err
	}
	peer, _, err := Expect[*wire.Attach](c)
	return peer, err
}
