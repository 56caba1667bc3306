package engine

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/amqp1kit/amqp1kit/internal/wire"
)

const readBufferSize = 16 << 10

// readChunk is the first allocation for a frame body; larger bodies grow as they
// arrive.
const readChunk = 16 << 10

// Conn is one client connection.
type Conn struct {
	srv *Server
	h   Handler
	id  uint64
	raw net.Conn // the accepted socket, never replaced
	// nc is the socket or the TLS connection over it. The serving goroutine replaces
	// it during the handshake under mu; other goroutines read it under mu.
	nc  net.Conn
	rd  *bufio.Reader
	log *slog.Logger

	// Set during the handshake and open, read-only afterwards.
	user         string
	mechanism    string
	tlsState     *tls.ConnectionState
	remoteOpen   *wire.Open
	peerMaxFrame uint32
	peerIdle     time.Duration
	idle         time.Duration // the server's idle time-out on this connection
	channelMax   uint16
	hdr          [wire.FrameHeaderSize]byte
	// handlerOpened is set once Handler.Opened has been called; only then does the
	// handler hear Closed. Used by the serving goroutine only.
	handlerOpened bool

	// Context is free for the handler's per-connection state.
	Context any

	mu         sync.Mutex
	out        []byte
	writing    int  // bytes the writer has taken from out and not finished writing
	congested  bool // Writable said false since the output last drained
	wake       chan struct{}
	done       chan struct{}
	sessions   map[uint16]*session // by the peer's channel
	localChans map[uint16]*session // by our channel
	chanHint   uint16              // no local channel below it is free
	opened     bool                // open exchanged
	closeSent  bool
	peerClosed bool // the peer's close arrived; teardown answers it
	dead       bool
	deadErr    error
	flushClose bool        // close the socket once out is written
	sentErr    *wire.Error // the error the server closed the connection with
	tracing    bool
	closeOnce  sync.Once
	writerDone chan struct{} // closed when the writer exits; nil before it starts
}

func newConn(s *Server, nc net.Conn, id uint64) *Conn {
	c := &Conn{
		srv:        s,
		h:          s.handler,
		id:         id,
		raw:        nc,
		nc:         nc,
		rd:         bufio.NewReaderSize(nc, readBufferSize),
		wake:       make(chan struct{}, 1),
		done:       make(chan struct{}),
		sessions:   map[uint16]*session{},
		localChans: map[uint16]*session{},
		tracing:    s.opts.Trace != nil,
	}
	c.log = s.opts.Logger.With("conn", id, "remote", nc.RemoteAddr().String())
	return c
}

// ID returns a number unique among the server's connections.
func (c *Conn) ID() uint64 { return c.id }

// RemoteAddr returns the client's network address.
func (c *Conn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }

// User returns the authenticated SASL user ("anonymous" for ANONYMOUS, "" when the
// client skipped SASL).
func (c *Conn) User() string { return c.user }

// Mechanism returns the SASL mechanism used, or "" when the client skipped SASL.
func (c *Conn) Mechanism() string { return c.mechanism }

// TLS returns the TLS state, or nil for a plain connection.
func (c *Conn) TLS() *tls.ConnectionState { return c.tlsState }

// RemoteOpen returns the client's open frame (nil before it arrived).
func (c *Conn) RemoteOpen() *wire.Open { return c.remoteOpen }

// ContainerID returns the client's container id.
func (c *Conn) ContainerID() string {
	if c.remoteOpen == nil {
		return ""
	}
	return c.remoteOpen.ContainerID
}

// Done is closed when the connection is gone.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended, once Done is closed: nil for an orderly
// close without an error, the *wire.Error the server closed with (even when the peer
// answered it), a *RemoteError when the peer closed with one, else the network or
// protocol error.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deadErr
}

// Logger returns the connection's logger.
func (c *Conn) Logger() *slog.Logger { return c.log }

// Links returns the connection's attached links.
func (c *Conn) Links() []*Link {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Link
	for _, s := range c.sessions {
		for _, l := range s.byRemote {
			out = append(out, l)
		}
	}
	return out
}

// Close sends close with err (nil for an orderly close) and drops the connection
// after the peer answers or a short grace period.
func (c *Conn) Close(err *wire.Error) {
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return
	}
	if !c.opened || c.closeSent {
		c.mu.Unlock()
		c.drop(errors.New("closed by the server"))
		return
	}
	c.sendCloseLocked(err)
	c.mu.Unlock()
	go func() {
		select {
		case <-c.done:
		case <-time.After(time.Second):
			c.drop(errors.New("peer did not answer close"))
		}
	}()
}

// Drop cuts the connection without any AMQP close (a network fault to inject).
func (c *Conn) Drop() { c.drop(errors.New("dropped by the server")) }

func (c *Conn) drop(err error) {
	c.mu.Lock()
	if !c.dead {
		c.dead = true
		c.deadErr = err
	}
	c.mu.Unlock()
	c.closeSocket()
}

// closeSocket closes the connection's socket (through TLS if it has been started)
// once; any goroutine may call it, but not with mu held.
func (c *Conn) closeSocket() {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		nc := c.nc
		c.mu.Unlock()
		nc.Close()
	})
}

func (c *Conn) sendCloseLocked(err *wire.Error) {
	c.writeLocked(0, &wire.Close{Error: err}, nil)
	if err != nil && c.sentErr == nil {
		c.sentErr = err
	}
	c.closeSent = true // after the close itself: writeLocked drops frames from here on
	c.flushClose = false
}

// closingLocked reports whether the server may no longer send on the connection: it
// is gone, the server has sent close (part 2.4.3: nothing may follow it), or the
// peer's close arrived (only the answering close follows, from teardown).
func (c *Conn) closingLocked() bool { return c.dead || c.closeSent || c.peerClosed }

func (c *Conn) trace(in bool, ch uint16, body wire.Marshaler, n int) {
	if c.srv.opts.Trace != nil {
		c.srv.opts.Trace(TraceEvent{Conn: c, Incoming: in, Channel: ch, Body: body, PayloadSize: n})
	}
}

// readFrame reads one frame, refusing sizes above max before reading the body. The
// body (after any extended header) is a new slice the caller owns.
func (c *Conn) readFrame(max uint32) (wire.FrameHeader, []byte, error) {
	if _, err := io.ReadFull(c.rd, c.hdr[:]); err != nil {
		return wire.FrameHeader{}, nil, err
	}
	h, err := wire.ParseFrameHeader(c.hdr[:], max)
	if err != nil {
		return h, nil, err
	}
	n := int(h.Size) - wire.FrameHeaderSize
	if n == 0 {
		return h, nil, nil
	}
	// Grow the body as its bytes arrive rather than trusting the header: a peer that
	// announces a large frame and sends nothing more holds no more than a chunk.
	body := make([]byte, min(n, readChunk))
	if _, err := io.ReadFull(c.rd, body); err != nil {
		return h, nil, err
	}
	for len(body) < n {
		k := len(body)
		body = slices.Grow(body, min(n-k, k))
		body = body[:k+min(n-k, k)]
		if _, err := io.ReadFull(c.rd, body[k:]); err != nil {
			return h, nil, err
		}
	}
	body = body[int(h.DataOff)*4-wire.FrameHeaderSize:]
	if len(body) == 0 {
		return h, nil, nil // an extended header and no body: still an empty frame
	}
	return h, body, nil
}

// writeLocked encodes a frame into the output buffer and wakes the writer. Frames
// after the server's close are dropped.
func (c *Conn) writeLocked(ch uint16, body wire.Marshaler, payload []byte) {
	if c.closingLocked() {
		return
	}
	c.appendLocked(ch, body, payload)
}

// appendLocked encodes a frame into the output buffer, traces it and wakes the
// writer, whatever the connection's state: writeLocked, and teardown's answer to a
// peer's close.
func (c *Conn) appendLocked(ch uint16, body wire.Marshaler, payload []byte) {
	var err error
	c.out, err = wire.AppendFrame(c.out, wire.FrameAMQP, ch, body, payload)
	if err != nil {
		// Only values the engine built reach here; an encoding failure is a bug.
		c.log.Error("encoding a frame failed", "frame", fmt.Sprintf("%T", body), "err", err)
		return
	}
	if c.tracing {
		c.trace(false, ch, body, len(payload))
	}
	c.kick()
}

func (c *Conn) kick() {
	if len(c.out) > c.srv.opts.MaxOutputBuffer {
		c.dead = true
		c.deadErr = fmt.Errorf("peer is not reading: %d bytes queued", len(c.out))
		c.log.Warn("dropping connection: output buffer over limit", "bytes", len(c.out))
		go c.closeSocket()
		return
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Writable reports whether the bytes queued for the peer are below
// Options.OutputHighWater: a policy sends messages to a connection only while it is,
// and a WritableHandler hears when it becomes so again.
func (c *Conn) Writable() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writableLocked()
}

func (c *Conn) writableLocked() bool {
	if len(c.out)+c.writing < c.srv.opts.OutputHighWater {
		return true
	}
	c.congested = true
	return false
}

// Buffered returns the bytes queued for the peer, written or being written.
func (c *Conn) Buffered() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.out) + c.writing
}

// writeLoop writes queued frames in batches and sends empty frames to keep an idle
// peer's time-out from firing.
func (c *Conn) writeLoop() {
	var spare []byte
	// The keep-alive timer runs from the end of the last write: whatever the
	// scheduling delays, the peer never waits more than half its idle time-out
	// (plus those delays) for a frame.
	var keepAlive *time.Timer
	var tick <-chan time.Time
	if c.peerIdle > 0 {
		keepAlive = time.NewTimer(c.peerIdle / 2)
		defer keepAlive.Stop()
		tick = keepAlive.C
	}
	for {
		select {
		case <-c.wake:
		case <-tick:
			c.mu.Lock()
			if len(c.out) == 0 && !c.dead {
				c.out, _ = wire.AppendFrame(c.out, wire.FrameAMQP, 0, nil, nil) // empty frame
			}
			c.mu.Unlock()
		case <-c.done:
			return
		}
		c.mu.Lock()
		buf := c.out
		c.out = spare[:0]
		c.writing = len(buf)
		closeAfter := c.flushClose
		c.mu.Unlock()
		if len(buf) > 0 {
			_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.opts.WriteTimeout))
			if _, err := c.nc.Write(buf); err != nil {
				c.drop(fmt.Errorf("write: %w", err))
				return
			}
			if keepAlive != nil {
				keepAlive.Reset(c.peerIdle / 2)
			}
		}
		c.mu.Lock()
		c.writing = 0
		drained := c.congested && len(c.out) < c.srv.opts.OutputHighWater/2
		if drained {
			c.congested = false
		}
		c.mu.Unlock()
		if wh, ok := c.h.(WritableHandler); ok && drained {
			wh.Writable(c)
		}
		// The written buffer becomes the next spare; a very large one is dropped,
		// and then so is the old spare, which c.out now uses.
		if cap(buf) <= 1<<20 {
			spare = buf
		} else {
			spare = nil
		}
		if closeAfter {
			c.drop(nil)
			return
		}
	}
}

// serve runs the connection to its end on the calling goroutine.
func (c *Conn) serve() {
	err := c.run()
	c.teardown(err)
}

func (c *Conn) run() error {
	opts := &c.srv.opts
	_ = c.nc.SetDeadline(time.Now().Add(opts.HandshakeTimeout))
	if err := c.handshake(); err != nil {
		c.log.Info("handshake failed", "err", err)
		return err
	}
	h, body, err := c.readFrame(opts.MaxFrameSize)
	if err != nil {
		return fmt.Errorf("reading open: %w", err)
	}
	if h.Type != wire.FrameAMQP || body == nil {
		return c.protocolError(wire.ErrCondFramingError, "the first frame must be open")
	}
	p, _, err := wire.DecodePerformative(body)
	if err != nil {
		return c.protocolError(wire.ErrCondDecodeError, err.Error())
	}
	open, ok := p.(*wire.Open)
	if !ok {
		return c.protocolError(wire.ErrCondFramingError, fmt.Sprintf("the first frame must be open, not %T", p))
	}
	c.trace(true, h.Channel, open, 0)
	_ = c.nc.SetDeadline(time.Time{})
	c.remoteOpen = open
	c.peerMaxFrame = max(open.MaxFrameSize, wire.MinMaxFrameSize)
	c.peerIdle = time.Duration(open.IdleTimeOut) * time.Millisecond
	c.channelMax = min(open.ChannelMax, opts.ChannelMax)
	c.idle = opts.IdleTimeout
	if c.idle == 0 && opts.IdleTimeoutFromPeer {
		c.idle = 2 * c.peerIdle
	}
	c.log.Debug("open", "container", open.ContainerID, "user", c.user, "mechanism", c.mechanism)

	c.handlerOpened = true
	refusal := c.h.Opened(c)
	c.mu.Lock()
	c.opened = true
	c.writeLocked(0, &wire.Open{
		ContainerID:  opts.ContainerID,
		MaxFrameSize: opts.MaxFrameSize,
		ChannelMax:   c.channelMax,
		// Part 2.4.5: announce half the real threshold, to avoid spurious time-outs.
		IdleTimeOut:         uint32(c.idle / 2 / time.Millisecond),
		OfferedCapabilities: opts.OfferedCapabilities,
		DesiredCapabilities: opts.DesiredCapabilities,
		Properties:          c.openProperties(),
	}, nil)
	c.mu.Unlock()
	c.startWriter()
	if refusal != nil {
		return c.protocolErrorWith(toWireError(refusal))
	}
	return c.readLoop()
}

// openProperties are the properties of the open frame: the server's, and the
// connection's own.
func (c *Conn) openProperties() wire.Fields {
	opts := &c.srv.opts
	if opts.ConnProperties == nil {
		return opts.Properties
	}
	p := make(wire.Fields, len(opts.Properties)+2)
	maps.Copy(p, opts.Properties)
	maps.Copy(p, opts.ConnProperties(c))
	return p
}

// protocolError closes the connection with a condition and returns the error; the
// close frame is flushed by teardown before the socket is closed.
func (c *Conn) protocolError(cond wire.ErrCond, desc string) error {
	return c.protocolErrorWith(&wire.Error{Condition: cond, Description: desc})
}

func (c *Conn) protocolErrorWith(e *wire.Error) error {
	c.log.Warn("closing connection", "condition", e.Condition, "description", e.Description)
	c.mu.Lock()
	start := false
	if !c.opened {
		// Part 2.4.5: a close may only follow an open; send a minimal one first.
		c.opened = true
		start = true
		c.writeLocked(0, &wire.Open{ContainerID: c.srv.opts.ContainerID}, nil)
	}
	if !c.closeSent {
		c.sendCloseLocked(e)
	}
	c.mu.Unlock()
	if start {
		c.startWriter()
	}
	return e
}

func (c *Conn) startWriter() {
	c.writerDone = make(chan struct{})
	go func() {
		defer close(c.writerDone)
		c.writeLoop()
	}()
}

func (c *Conn) readLoop() error {
	opts := &c.srv.opts
	for {
		if c.idle > 0 {
			_ = c.nc.SetReadDeadline(time.Now().Add(c.idle))
		}
		h, body, err := c.readFrame(opts.MaxFrameSize)
		if err != nil {
			var tooBig *wire.FrameTooLargeError
			var ne net.Error
			switch {
			case errors.As(err, &tooBig):
				return c.protocolError(wire.ErrCondFramingError, err.Error())
			case errors.Is(err, wire.ErrMalformed):
				return c.protocolError(wire.ErrCondFramingError, err.Error())
			case errors.As(err, &ne) && ne.Timeout() && c.idle > 0 && !c.isDead():
				return c.protocolError(wire.ErrCondResourceLimitExceeded,
					fmt.Sprintf("local-idle-timeout expired: nothing received for %v", c.idle))
			}
			c.mu.Lock()
			closeSent, dead := c.closeSent, c.dead
			c.mu.Unlock()
			if dead || (closeSent && (errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed))) {
				return nil
			}
			if errors.Is(err, io.EOF) || errors.Is(err, os.ErrDeadlineExceeded) {
				return fmt.Errorf("peer went away without close: %w", err)
			}
			return err
		}
		if body == nil {
			continue // an empty frame: keep-alive
		}
		if h.Type != wire.FrameAMQP {
			return c.protocolError(wire.ErrCondFramingError, fmt.Sprintf("frame type %d after open", h.Type))
		}
		p, payload, err := wire.DecodePerformative(body)
		if err != nil {
			return c.protocolError(wire.ErrCondDecodeError, err.Error())
		}
		if c.tracing {
			c.trace(true, h.Channel, p, len(payload))
		}
		done, err := c.dispatch(h.Channel, p, payload)
		if err != nil || done {
			return err
		}
	}
}

func (c *Conn) isDead() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dead
}

// dispatch handles one performative; done reports an orderly end of the connection.
func (c *Conn) dispatch(ch uint16, p wire.Performative, payload []byte) (bool, error) {
	if _, ok := p.(*wire.Close); !ok {
		c.mu.Lock()
		closeSent := c.closeSent
		c.mu.Unlock()
		if closeSent {
			return false, nil // the server has closed: only the peer's close matters now
		}
	}
	if _, ok := p.(*wire.Transfer); !ok && len(payload) > 0 {
		return false, c.protocolError(wire.ErrCondFramingError, fmt.Sprintf("%d stray bytes after %T", len(payload), p))
	}
	switch p := p.(type) {
	case *wire.Open:
		return false, c.protocolError(wire.ErrCondIllegalState, "second open")
	case *wire.Close:
		c.mu.Lock()
		if p.Error != nil {
			c.log.Info("peer closed with error", "condition", p.Error.Condition, "description", p.Error.Description)
		}
		if !c.closeSent {
			// Answered in teardown, once the handler has heard every link go: a
			// client that reconnects at once finds them gone (qpidd frees a
			// subscription before it answers the close).
			c.peerClosed = true
		}
		c.mu.Unlock()
		if p.Error != nil {
			return true, &RemoteError{Err: p.Error}
		}
		return true, nil
	case *wire.Begin:
		return false, c.handleBegin(ch, p)
	}
	c.mu.Lock()
	s := c.sessions[ch]
	c.mu.Unlock()
	if s == nil {
		return false, c.protocolError(wire.ErrCondFramingError, fmt.Sprintf("%T on channel %d, which has no session", p, ch))
	}
	return false, s.handle(p, payload)
}

// RemoteError is the error a peer sent in its close, end or detach.
type RemoteError struct{ Err *wire.Error }

// Error returns "peer closed: condition: description".
func (e *RemoteError) Error() string { return "peer closed: " + e.Err.Error() }

// Unwrap returns the peer's *wire.Error.
func (e *RemoteError) Unwrap() error { return e.Err }

func (c *Conn) handleBegin(ch uint16, b *wire.Begin) error {
	if b.RemoteChannel != nil {
		return c.protocolError(wire.ErrCondIllegalState, "begin answering a session the server never began")
	}
	if ch > c.channelMax {
		return c.protocolError(wire.ErrCondFramingError, fmt.Sprintf("channel %d above channel-max %d", ch, c.channelMax))
	}
	c.mu.Lock()
	if _, dup := c.sessions[ch]; dup {
		c.mu.Unlock()
		return c.protocolError(wire.ErrCondIllegalState, fmt.Sprintf("begin on channel %d, which already has a session", ch))
	}
	local := lowestFree(c.localChans, &c.chanHint)
	s := newSession(c, local, ch, b)
	c.sessions[ch] = s
	c.localChans[local] = s
	remote := ch
	c.writeLocked(local, &wire.Begin{
		RemoteChannel:  &remote,
		NextOutgoingID: s.nextOutgoingID,
		IncomingWindow: s.incomingWindow,
		OutgoingWindow: maxWindow,
		HandleMax:      maxHandle,
	}, nil)
	c.mu.Unlock()
	return nil
}

// teardown runs once the connection's read side is over.
func (c *Conn) teardown(err error) {
	c.mu.Lock()
	var links []*Link
	for _, s := range c.sessions {
		links = append(links, s.detachAllLocked()...)
	}
	c.sessions = map[uint16]*session{}
	c.localChans = map[uint16]*session{}
	if !c.dead {
		c.dead = true
		c.deadErr = err
	} else if c.deadErr == nil {
		c.deadErr = err
	}
	// The first cause wins: a connection dropped by the writer (a peer that stopped
	// reading) or by Close ends its read loop without an error of its own.
	err = c.deadErr
	if err == nil && c.sentErr != nil {
		// The peer answered the server's close in order, but the server closed with
		// an error: that is why the connection ended.
		err = c.sentErr
		c.deadErr = err
	}
	c.mu.Unlock()
	var re *RemoteError
	if err != nil && !errors.As(err, &re) {
		var we *wire.Error
		if errors.As(err, &we) {
			c.log.Info("connection closed with error", "err", err)
		} else if !errors.Is(err, net.ErrClosed) {
			c.log.Info("connection ended", "err", err)
		}
	}
	connErr := &wire.Error{Condition: wire.ErrCondConnectionForced, Description: "connection closed"}
	for _, l := range links {
		c.h.LinkDetached(l, connErr)
	}
	if c.handlerOpened {
		c.h.Closed(c, err)
	}
	c.mu.Lock()
	if c.peerClosed && !c.closeSent {
		// The answer to the peer's close, after the handler has heard the links go.
		c.appendLocked(0, &wire.Close{}, nil)
		c.closeSent = true
	}
	c.flushClose = true
	c.kick()
	c.mu.Unlock()
	if c.writerDone != nil {
		// Let the writer flush what is queued (a final close), bounded.
		select {
		case <-c.writerDone:
		case <-time.After(2 * time.Second):
		}
	}
	c.closeSocket()
	// Leave the server's table before Done fires, so that whoever waits on Done
	// sees Conns without this connection.
	c.srv.forget(c)
	close(c.done)
}

func toWireError(err error) *wire.Error {
	var we *wire.Error
	if errors.As(err, &we) {
		return we
	}
	return &wire.Error{Condition: wire.ErrCondInternalError, Description: err.Error()}
}
