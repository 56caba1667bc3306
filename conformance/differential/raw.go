package differential

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// rawConn is a client connection written frame by frame, for steps go-amqp will not
// take (a null source, a detach that does not close, requested settle modes it
// would refuse to see changed).
type rawConn struct {
	c net.Conn

	mu     sync.Mutex
	cond   *sync.Cond
	frames []rawFrame
	next   int // frames before next have been consumed by expect
	err    error
	done   chan struct{}
	// transfers counts the transfer frames received on each of the intermediary's
	// channels, for the next-incoming-id of the client's flows.
	transfers map[uint16]uint32
	linger    time.Duration // how long close waits for the intermediary's end
	closeSent bool          // the client has sent close
}

// rawFrame is a frame the intermediary sent.
type rawFrame struct {
	channel uint16
	body    any // wire.Performative, wire.SASLFrame, nil for an empty frame
}

// dialRaw connects to the proxy, does SASL ANONYMOUS when sasl is set, exchanges
// the AMQP protocol headers, then reads frames in the background until the
// connection closes (the scenario's end closes it).
func dialRaw(ctx context.Context, env *Env, sasl bool) (*rawConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", env.Addr())
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if sasl {
		if err := rawSASL(c); err != nil {
			c.Close()
			return nil, err
		}
	}
	hdr := wire.ProtocolHeader{ID: wire.ProtoAMQP, Major: 1}.Bytes()
	if _, err := c.Write(hdr[:]); err != nil {
		c.Close()
		return nil, err
	}
	var got [8]byte
	if _, err := io.ReadFull(c, got[:]); err != nil {
		c.Close()
		return nil, fmt.Errorf("raw client: reading the protocol header: %w", err)
	}
	if got != hdr {
		c.Close()
		return nil, fmt.Errorf("raw client: the intermediary answered the AMQP header with %q", got[:])
	}
	r := &rawConn{c: c, done: make(chan struct{}), transfers: map[uint16]uint32{}, linger: env.opts.step()}
	r.cond = sync.NewCond(&r.mu)
	go r.read()
	env.Defer(r.close)
	return r, nil
}

// rawSASL does the SASL layer with ANONYMOUS.
func rawSASL(c net.Conn) error {
	hdr := wire.ProtocolHeader{ID: wire.ProtoSASL, Major: 1}.Bytes()
	if _, err := c.Write(hdr[:]); err != nil {
		return err
	}
	var got [8]byte
	if _, err := io.ReadFull(c, got[:]); err != nil {
		return fmt.Errorf("raw client: reading the SASL header: %w", err)
	}
	if got != hdr {
		return fmt.Errorf("raw client: the intermediary answered the SASL header with %q", got[:])
	}
	if _, err := readFrame(c); err != nil { // sasl-mechanisms
		return err
	}
	out, err := wire.AppendFrame(nil, wire.FrameSASL, 0, &wire.SASLInit{Mechanism: "ANONYMOUS", InitialResponse: []byte{}}, nil)
	if err != nil {
		return err
	}
	if _, err := c.Write(out); err != nil {
		return err
	}
	f, err := readFrame(c)
	if err != nil {
		return err
	}
	if o, ok := f.body.(*wire.SASLOutcome); !ok || o.Code != wire.SASLCodeOK {
		return fmt.Errorf("raw client: SASL ANONYMOUS refused: %T %v", f.body, f.body)
	}
	return nil
}

// readFrame reads one frame.
func readFrame(c io.Reader) (rawFrame, error) {
	var h [wire.FrameHeaderSize]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		return rawFrame{}, err
	}
	fh, err := wire.ParseFrameHeader(h[:], maxRecordedFrame)
	if err != nil {
		return rawFrame{}, err
	}
	rest := make([]byte, fh.Size-wire.FrameHeaderSize)
	if _, err := io.ReadFull(c, rest); err != nil {
		return rawFrame{}, err
	}
	body := rest[int(fh.DataOff)*4-wire.FrameHeaderSize:]
	f := rawFrame{channel: fh.Channel}
	switch {
	case len(body) == 0:
	case fh.Type == wire.FrameSASL:
		f.body, err = wire.DecodeSASLFrame(body)
	default:
		f.body, _, err = wire.DecodePerformative(body)
	}
	return f, err
}

func (r *rawConn) read() {
	defer close(r.done)
	for {
		f, err := readFrame(r.c)
		r.mu.Lock()
		if err != nil {
			r.err = err
			r.cond.Broadcast()
			r.mu.Unlock()
			return
		}
		if _, ok := f.body.(*wire.Transfer); ok {
			r.transfers[f.channel]++
		}
		if f.body != nil {
			r.frames = append(r.frames, f)
			r.cond.Broadcast()
		}
		r.mu.Unlock()
	}
}

// send writes frames on channel ch.
func (r *rawConn) send(ch uint16, bodies ...wire.Marshaler) error {
	var out []byte
	for _, b := range bodies {
		if _, ok := b.(*wire.Close); ok {
			r.mu.Lock()
			r.closeSent = true
			r.mu.Unlock()
		}
		var err error
		if out, err = wire.AppendFrame(out, wire.FrameAMQP, ch, b, nil); err != nil {
			return err
		}
	}
	_, err := r.c.Write(out)
	return err
}

// errRawClosed is returned by expect once the intermediary closed the connection.
var errRawClosed = errors.New("raw client: the connection closed")

// expect returns the first frame not consumed yet that match accepts, consuming it
// and the frames before it.
func (r *rawConn) expect(ctx context.Context, match func(rawFrame) bool) (rawFrame, error) {
	stop := context.AfterFunc(ctx, func() {
		r.mu.Lock()
		r.cond.Broadcast()
		r.mu.Unlock()
	})
	defer stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		for i := r.next; i < len(r.frames); i++ {
			if match(r.frames[i]) {
				r.next = i + 1
				return r.frames[i], nil
			}
		}
		if err := ctx.Err(); err != nil {
			return rawFrame{}, err
		}
		if r.err != nil {
			return rawFrame{}, fmt.Errorf("%w: %v", errRawClosed, r.err)
		}
		r.cond.Wait()
	}
}

// expectType waits for the next frame whose body is a T on channel ch.
func expectType[T any](ctx context.Context, r *rawConn, ch uint16, match func(T) bool) (T, error) {
	f, err := r.expect(ctx, func(f rawFrame) bool {
		x, ok := f.body.(T)
		return ok && f.channel == ch && (match == nil || match(x))
	})
	if err != nil {
		var zero T
		return zero, err
	}
	return f.body.(T), nil
}

// open sends open and waits for the intermediary's.
func (r *rawConn) open(ctx context.Context, o *wire.Open) (*wire.Open, error) {
	if err := r.send(0, o); err != nil {
		return nil, err
	}
	return expectType[*wire.Open](ctx, r, 0, nil)
}

// begin begins a session on channel ch and waits for the intermediary's begin
// answering it.
func (r *rawConn) begin(ctx context.Context, ch uint16, b *wire.Begin) (*rawSession, error) {
	if err := r.send(ch, b); err != nil {
		return nil, err
	}
	f, err := r.expect(ctx, func(f rawFrame) bool {
		x, ok := f.body.(*wire.Begin)
		return ok && x.RemoteChannel != nil && *x.RemoteChannel == ch
	})
	if err != nil {
		return nil, err
	}
	return &rawSession{r: r, ch: ch, peerCh: f.channel, peerNext: f.body.(*wire.Begin).NextOutgoingID}, nil
}

// attach sends an attach on channel ch and waits for the intermediary's attach of the
// same name on its channel peerCh.
func (r *rawConn) attach(ctx context.Context, ch, peerCh uint16, a *wire.Attach) (*wire.Attach, error) {
	if err := r.send(ch, a); err != nil {
		return nil, err
	}
	return expectType(ctx, r, peerCh, func(x *wire.Attach) bool { return x.Name == a.Name })
}

// close closes the connection as a client should: close (unless the scenario sent
// one) answered by the intermediary's close, then half-closing the socket and
// waiting for the intermediary to close its side, each for a step at most; the
// reader ends.
func (r *rawConn) close() {
	r.mu.Lock()
	sent, failed := r.closeSent, r.err != nil
	r.mu.Unlock()
	if !sent && !failed && r.send(0, &wire.Close{}) == nil {
		ctx, cancel := context.WithTimeout(context.Background(), r.linger)
		_, _ = expectType[*wire.Close](ctx, r, 0, nil)
		cancel()
	}
	if tc, ok := r.c.(*net.TCPConn); ok && tc.CloseWrite() == nil {
		t := time.NewTimer(r.linger)
		select {
		case <-r.done:
		case <-t.C:
		}
		t.Stop()
	}
	r.c.Close()
	<-r.done
}

// rawSession is a begun session of a raw connection.
type rawSession struct {
	r        *rawConn
	ch       uint16 // the client's channel
	peerCh   uint16 // the intermediary's channel
	peerNext uint32 // the next-outgoing-id of the intermediary's begin
	handle   uint32 // the next handle to use
}

// flow sends a link flow for the client's handle h (session fields filled in).
func (s *rawSession) flow(h, deliveryCount, credit uint32, drain bool) error {
	s.r.mu.Lock()
	next := s.peerNext + s.r.transfers[s.peerCh]
	s.r.mu.Unlock()
	return s.r.send(s.ch, &wire.Flow{NextIncomingID: &next, IncomingWindow: 1000, OutgoingWindow: 1000,
		Handle: &h, DeliveryCount: &deliveryCount, LinkCredit: &credit, Drain: drain})
}

// openRaw connects with SASL ANONYMOUS, opens with container id and begins one
// session on channel 0: the usual start of a raw scenario.
func openRaw(ctx context.Context, env *Env, container string) (*rawSession, error) {
	r, err := dialRaw(ctx, env, true)
	if err != nil {
		return nil, err
	}
	if _, err := r.open(ctx, &wire.Open{ContainerID: container, MaxFrameSize: 65536, ChannelMax: 15}); err != nil {
		return nil, fmt.Errorf("raw client: open: %w", err)
	}
	s, err := r.begin(ctx, 0, &wire.Begin{NextOutgoingID: 0, IncomingWindow: 1000, OutgoingWindow: 1000, HandleMax: 63})
	if err != nil {
		return nil, fmt.Errorf("raw client: begin: %w", err)
	}
	return s, nil
}

// attach attaches a link with the next handle and returns the intermediary's attach.
func (s *rawSession) attach(ctx context.Context, a *wire.Attach) (*wire.Attach, error) {
	a.Handle = s.handle
	s.handle++
	return s.r.attach(ctx, s.ch, s.peerCh, a)
}

// detach detaches handle h and waits for the intermediary's detach of its end of the
// link (its handle peerHandle).
func (s *rawSession) detach(ctx context.Context, h, peerHandle uint32, closed bool, e *wire.Error) (*wire.Detach, error) {
	if err := s.r.send(s.ch, &wire.Detach{Handle: h, Closed: closed, Error: e}); err != nil {
		return nil, err
	}
	return expectType(ctx, s.r, s.peerCh, func(x *wire.Detach) bool { return x.Handle == peerHandle })
}

// awaitDetach waits for the intermediary to detach its handle peerHandle.
func (s *rawSession) awaitDetach(ctx context.Context, peerHandle uint32) (*wire.Detach, error) {
	return expectType(ctx, s.r, s.peerCh, func(x *wire.Detach) bool { return x.Handle == peerHandle })
}
