package engine

import (
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// smallBufListener gives every accepted socket a small send buffer, so that a peer
// that stops reading fills the kernel's buffers with kilobytes, not megabytes.
type smallBufListener struct{ net.Listener }

func (l smallBufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(16 << 10)
	}
	return c, err
}

// busyBystander makes round trips through the server until stopped and reports
// how many it made and the first error.
type busyBystander struct {
	stop  chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	trips int
	err   error
}

func startBusyBystander(t *testing.T, url string) *busyBystander {
	t.Helper()
	by := newBystander(t, url, nil)
	b := &busyBystander{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		for {
			select {
			case <-b.stop:
				return
			default:
			}
			if err := by.roundTrip(); err != nil {
				b.mu.Lock()
				b.err = err
				b.mu.Unlock()
				return
			}
			b.mu.Lock()
			b.trips++
			b.mu.Unlock()
		}
	}()
	t.Cleanup(b.finish)
	return b
}

func (b *busyBystander) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.trips
}

func (b *busyBystander) finish() {
	select {
	case <-b.stop:
	default:
		close(b.stop)
	}
	<-b.done
}

// A peer that stops reading while the server sends to it is dropped after
// WriteTimeout or once MaxOutputBuffer is exceeded; meanwhile another client of the
// same server goes on working, and the handler hears why the peer went.
func TestPeerThatStopsReading(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		opts Options
		why  string // in Conn.Err, the error Closed receives and the log
	}{
		{"write-timeout", Options{WriteTimeout: 300 * time.Millisecond}, "i/o timeout"},
		{"max-output-buffer", Options{WriteTimeout: time.Minute, MaxOutputBuffer: 256 << 10}, "peer is not reading"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			logs, logger := newLogSink()
			opts := tc.opts
			opts.Logger = logger
			pol := newQueuePolicy()
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := NewServer(pol, &opts)
			go func() { _ = srv.Serve(smallBufListener{l}) }()
			t.Cleanup(func() { srv.Close() })
			url := "amqp://" + l.Addr().String()

			busy := startBusyBystander(t, url)
			p := dialPeer(t, url)
			_ = p.nc.(*net.TCPConn).SetReadBuffer(16 << 10)
			p.open()
			slow := newestConn(t, srv)
			p.begin(0)
			p.attach(0, receiverAttach("r", 0, "flood"))
			pol.fill(t, "flood", 256, 16<<10) // 4 MiB, far more than the buffers hold
			p.writeFrame(0, linkFlow(0, 0, 1<<20))
			// ... and never reads again.
			before := busy.count()
			select {
			case <-slow.Done():
			case <-time.After(15 * time.Second):
				t.Fatal("the server did not drop a peer that stopped reading")
			}
			if err := slow.Err(); err == nil || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("Conn.Err() = %v, want it to say %q", err, tc.why)
			}
			logs.want(t, tc.why)
			waitFor(t, "the handler to hear Closed", func() bool {
				pol.mu.Lock()
				defer pol.mu.Unlock()
				return len(pol.closed) > 0
			})
			pol.mu.Lock()
			closedErr := pol.closed[0]
			pol.mu.Unlock()
			if closedErr == nil || !strings.Contains(closedErr.Error(), tc.why) {
				t.Fatalf("Closed got %v, want the reason the peer was dropped", closedErr)
			}
			// Nothing is lost: what the peer never settled went back to the queue.
			waitFor(t, "the flood to be requeued", func() bool { return pol.depth("flood") == 256 })

			// The other client worked throughout and still does.
			waitFor(t, "the bystander to make more round trips", func() bool { return busy.count() > before+3 })
			busy.finish()
			if busy.err != nil {
				t.Fatalf("the bystander was disturbed: %v", busy.err)
			}
			if busy.count() == 0 {
				t.Fatal("the bystander made no round trip")
			}
		})
	}
}

// Server.Close with clients in every state returns promptly; clients that were open
// get close with amqp:connection:forced, and every socket is closed.
func TestServerCloseWithClients(t *testing.T) {
	t.Parallel()
	pol := newQueuePolicy()
	srv, url := startServer(t, pol, nil)
	ctx := ctxT(t)
	gc := dial(t, url, nil)
	sess, err := gc.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sess.NewReceiver(ctx, "x", nil); err != nil {
		t.Fatal(err)
	}
	polite := dialPeer(t, url) // answers close
	polite.open()
	polite.begin(0)
	rude := dialPeer(t, url) // never answers
	rude.open()
	handshaking := dialPeer(t, url) // has not even sent a protocol header
	midSASL := dialPeer(t, url)
	midSASL.writeHeader(wire.ProtoSASL)
	midSASL.wantHeader(wire.ProtoSASL)
	// The mechanisms follow the header in a write of their own: read them before the
	// close, which could otherwise come between the two.
	readFrame[*wire.SASLMechanisms](midSASL)
	waitFor(t, "every client to be served", func() bool { return len(srv.Conns()) == 5 })

	closed := make(chan struct{})
	go func() { srv.Close(); close(closed) }()
	polite.wantClose(wire.ErrCondConnectionForced)
	polite.writeFrame(0, &wire.Close{})
	polite.wantClosedSocket()
	rude.wantClose(wire.ErrCondConnectionForced)
	rude.wantClosedSocket() // after the grace period
	handshaking.wantClosedSocket()
	midSASL.wantClosedSocket()
	select {
	case <-gc.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the go-amqp client did not see the server close")
	}
	var connErr *amqp.ConnError
	if err := gc.Err(); !errors.As(err, &connErr) || connErr.RemoteErr == nil || connErr.RemoteErr.Condition != amqp.ErrCondConnectionForced {
		t.Fatalf("go-amqp client ended with %v, want amqp:connection:forced", err)
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Server.Close did not return")
	}
	if n := len(srv.Conns()); n != 0 {
		t.Fatalf("%d connections left after Close", n)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(l); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Close: %v, want ErrServerClosed", err)
	}
	srv.Close() // idempotent
}
