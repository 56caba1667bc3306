package differential

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"sync"
	"time"

	amqp "github.com/Azure/go-amqp"
)

// Env is what a scenario runs with: the proxy's URL to connect to, names of its own,
// and ways to wait for the intermediary's frames. Everything it opens is closed when
// the scenario ends.
type Env struct {
	url   string
	p     *proxy
	opts  Options
	mu    sync.Mutex
	uniq  []string
	notes []string
	close []func()
}

// URL is the recording proxy's URL (amqp://127.0.0.1:PORT, with the target's user
// info): connect here, not to the intermediary.
func (e *Env) URL() string { return e.url }

// Addr is the proxy's host:port, for connections written frame by frame.
func (e *Env) Addr() string { return e.p.addr() }

// Unique returns prefix followed by a suffix made up for this run; the suffix is
// masked in the report (as <u1>, <u2>, ... in the order they were made), so
// scenarios can use fresh addresses on an intermediary that outlives them.
func (e *Env) Unique(prefix string) string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	s := hex.EncodeToString(b[:])
	e.mu.Lock()
	e.uniq = append(e.uniq, s)
	e.mu.Unlock()
	return prefix + s
}

// Note records an observation the client made (an outcome, an error, a message that
// did not come), shown in the report beside the frames.
func (e *Env) Note(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.notes = append(e.notes, fmt.Sprintf(format, args...))
}

// Quiet waits until no frame has passed the proxy, in either direction on any
// connection, for Options.Quiet counted from the call or from the last frame,
// whichever is later: the intermediary has done what it was going to do in answer to
// the last step (or is waiting for something).
func (e *Env) Quiet(ctx context.Context) error { return e.p.quiet(ctx, e.opts.quiet()) }

// Step returns a context for one step that may never complete on some
// intermediary (a message that does not come, credit that is not given): it ends
// after Options.Step.
func (e *Env) Step(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, e.opts.step())
}

// Defer registers f to run when the scenario ends, last registered first.
func (e *Env) Defer(f func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.close = append(e.close, f)
}

// Dial connects a go-amqp client to the proxy; the connection is closed when the
// scenario ends if the scenario has not closed it.
//
// Its socket closes gracefully: go-amqp's Close sends close and shuts the socket
// without waiting for the intermediary's close; here the socket is half-closed and
// kept until the intermediary closes its side (or Options.Step passes), so that the
// intermediary's close frame is recorded every time and no reset discards frames.
func (e *Env) Dial(ctx context.Context, opts *amqp.ConnOptions) (*amqp.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", e.p.addr())
	if err != nil {
		return nil, err
	}
	o := amqp.ConnOptions{}
	if opts != nil {
		o = *opts
	}
	if o.HostName == "" {
		o.HostName = "127.0.0.1"
	}
	c, err := amqp.NewConn(ctx, &gracefulConn{TCPConn: nc.(*net.TCPConn), linger: e.opts.step(), p: e.p}, &o)
	if err != nil {
		nc.Close()
		return nil, err
	}
	e.Defer(func() { _ = c.Close() })
	return c, nil
}

// gracefulConn closes by waiting for the intermediary's close frame, then
// half-closing and waiting for the other side's end.
type gracefulConn struct {
	*net.TCPConn
	linger time.Duration
	p      *proxy
	once   sync.Once
	err    error
}

// Close waits (for the linger time at most) until the intermediary has answered the
// close frame go-amqp wrote before calling it, sends FIN, reads (and drops) what
// still comes until the other side closes or the linger time passes, then closes
// the socket. (An intermediary may drop a connection on FIN without sending close.)
func (g *gracefulConn) Close() error {
	g.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), g.linger)
		g.p.awaitPeerClose(ctx, g.TCPConn.LocalAddr().String())
		cancel()
		if err := g.TCPConn.CloseWrite(); err == nil {
			_ = g.TCPConn.SetReadDeadline(time.Now().Add(g.linger))
			buf := make([]byte, 4096)
			for {
				if _, err := g.TCPConn.Read(buf); err != nil {
					break
				}
			}
		}
		g.err = g.TCPConn.Close()
	})
	return g.err
}

// Frames returns the frames recorded so far, as sent (not normalized).
func (e *Env) Frames() []Frame {
	ds := describe(e.p.snapshot())
	out := make([]Frame, len(ds))
	for i, d := range ds {
		out[i] = d.Frame
	}
	return out
}

// Mark returns a position in the recording, for AwaitFrame to look after.
func (e *Env) Mark() int {
	return len(e.p.snapshot())
}

// AwaitFrame waits for a frame recorded after mark (see Mark) that match accepts, and
// returns it (with its values as sent).
func (e *Env) AwaitFrame(ctx context.Context, mark int, match func(Frame) bool) (Frame, error) {
	var found Frame
	d := describer{conns: map[int]*connState{}}
	done := 0
	var last described
	_, err := e.p.await(ctx, 0, func(rs []record, i int) bool {
		for ; done <= i; done++ {
			last = d.one(rs[done])
		}
		if i < mark || !match(last.Frame) {
			return false
		}
		found = last.Frame
		return true
	})
	return found, err
}

// finish runs the registered clean-ups.
func (e *Env) finish() {
	e.mu.Lock()
	fs := e.close
	e.close = nil
	e.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

func (e *Env) state() (uniq, notes []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.uniq...), append([]string(nil), e.notes...)
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
