package engine

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// The idle tests run in a synctest bubble over net.Pipe: time is virtual, so the
// time-outs fire exactly when they should and the tests take no wall-clock time.

// A server with an idle time-out closes a peer that goes silent with
// amqp:resource-limit-exceeded, and keeps a peer that sends keep-alives.
func TestIdleTimeoutClosesSilentPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs, logger := newLogSink()
		s := NewServer(newQueuePolicy(), &Options{IdleTimeout: time.Second, Logger: logger})
		defer s.Close()

		lively := pipePeer(t, s)
		lively.open()
		lively.begin(0)
		silent := pipePeer(t, s)
		if o := silent.open(); o.IdleTimeOut != 500 {
			t.Fatalf("server open idle-time-out %d, want 500 (half the threshold)", o.IdleTimeOut)
		}
		start := time.Now()

		// The lively peer sends an empty frame every 400ms, reading nothing.
		stop := make(chan struct{})
		keptAlive := make(chan struct{})
		defer func() {
			select {
			case <-stop:
			default:
				close(stop)
			}
			<-keptAlive
		}()
		go func() {
			defer close(keptAlive)
			for {
				select {
				case <-stop:
					return
				case <-time.After(400 * time.Millisecond):
					if err := lively.tryWrite(encodeFrame(t, wire.FrameAMQP, 0, nil, nil)); err != nil {
						t.Errorf("keep-alive: %v", err)
						return
					}
				}
			}
		}()

		silent.wantClose(wire.ErrCondResourceLimitExceeded)
		if d := time.Since(start); d != time.Second {
			t.Fatalf("silent peer closed after %v, want exactly the 1s idle time-out", d)
		}
		silent.wantClosedSocket()
		logs.want(t, "closing connection", "amqp:resource-limit-exceeded", "local-idle-timeout expired")

		time.Sleep(3 * time.Second)
		close(stop)
		<-keptAlive
		lively.echo(0) // still open, 4s after the silent one was closed
	})
}

// An idle time-out counts from the last frame, keep-alives included: a peer that
// answers just in time each time is never closed.
func TestIdleTimeoutResetByEveryFrame(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewServer(newQueuePolicy(), &Options{IdleTimeout: time.Second})
		defer s.Close()
		p := pipePeer(t, s)
		p.open()
		p.begin(0)
		for range 5 {
			time.Sleep(999 * time.Millisecond)
			p.echo(0)
		}
		time.Sleep(999 * time.Millisecond)
		p.writeEmpty()
		time.Sleep(999 * time.Millisecond)
		p.echo(0)
		p.wantClose(wire.ErrCondResourceLimitExceeded) // a second later
	})
}

// The server keeps a peer with a short advertised idle-time-out alive by sending
// empty frames, never letting more than that time pass between frames.
func TestServerSendsKeepAlives(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewServer(newQueuePolicy(), nil)
		defer s.Close()
		p := pipePeer(t, s)
		o := peerOpen()
		o.IdleTimeOut = 100 // ms
		p.openWith(o)
		p.begin(0)
		p.keepEmpty = true

		start, last := time.Now(), time.Now()
		empty := 0
		var maxGap time.Duration
		for time.Since(start) < 2*time.Second {
			f := p.next()
			if f.Body != nil {
				t.Fatalf("got %v, want only keep-alives", f)
			}
			empty++
			maxGap = max(maxGap, time.Since(last))
			last = time.Now()
		}
		if maxGap > 100*time.Millisecond {
			t.Fatalf("%v passed between two frames; the peer asked for at most 100ms", maxGap)
		}
		if empty < 20 {
			t.Fatalf("%d empty frames in 2s; want at least one per 100ms", empty)
		}

		// Traffic counts as activity: no keep-alive is needed right after a frame.
		p.keepEmpty = false
		p.echo(0)
	})
}

// A peer that advertises no idle time-out gets no keep-alives from the server.
func TestNoKeepAlivesWithoutIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewServer(newQueuePolicy(), nil)
		defer s.Close()
		p := pipePeer(t, s)
		p.open()
		p.keepEmpty = true
		p.wantIdle(time.Hour)
	})
}

// The same with real time and real scheduling: the keep-alive clock must run from
// the last write, not from ticks that scheduling delays push around. (A ticker that
// skipped its tick whenever it fired a little early sent keep-alives about once per
// idle-time-out instead of twice, a quarter of the gaps exceeding it.) The median gap
// is asserted, not the largest, so that a loaded machine's stalls do not matter.
func TestServerKeepAlivesRealTime(t *testing.T) {
	t.Parallel()
	const idle = 40 * time.Millisecond
	_, url := startServer(t, newQueuePolicy(), nil)
	p := dialPeer(t, url)
	o := peerOpen()
	o.IdleTimeOut = uint32(idle / time.Millisecond)
	p.openWith(o)
	p.keepEmpty = true
	start, last := time.Now(), time.Now()
	var gaps []time.Duration
	for time.Since(start) < 1500*time.Millisecond {
		p.next()
		gaps = append(gaps, time.Since(last))
		last = time.Now()
	}
	slices.Sort(gaps)
	if median := gaps[len(gaps)/2]; median > idle*3/4 {
		t.Fatalf("median gap between keep-alives %v; want about half the peer's %v idle-time-out (gaps: %v)", median, idle, gaps)
	}
}

// A peer that goes silent before the connection is open is closed after
// HandshakeTimeout, whichever step it stopped at; a peer that opens in time is not.
func TestHandshakeTimeout(t *testing.T) {
	steps := map[string]func(p *testPeer){
		"nothing":     func(p *testPeer) {},
		"half-header": func(p *testPeer) { p.write([]byte("AMQ")) },
		"header-only": func(p *testPeer) { p.writeHeader(wire.ProtoAMQP); p.wantHeader(wire.ProtoAMQP) },
		"half-open": func(p *testPeer) {
			p.writeHeader(wire.ProtoAMQP)
			p.wantHeader(wire.ProtoAMQP)
			p.write([]byte{0, 0, 1, 0, 2})
		},
		"sasl-no-init": func(p *testPeer) {
			p.writeHeader(wire.ProtoSASL)
			p.wantHeader(wire.ProtoSASL)
			readFrame[*wire.SASLMechanisms](p)
		},
	}
	for name, step := range steps {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				logs, logger := newLogSink()
				s := NewServer(NopHandler{}, &Options{HandshakeTimeout: 2 * time.Second, Logger: logger})
				defer s.Close()
				p := pipePeer(t, s)
				prompt := pipePeer(t, s)
				start := time.Now()
				step(p)
				time.Sleep(1900 * time.Millisecond)
				prompt.open() // in time, and then never bothered by the deadline
				p.wantClosedSocket()
				if d := time.Since(start); d != 2*time.Second {
					t.Fatalf("closed after %v, want the 2s handshake time-out", d)
				}
				logs.want(t, "conn=1", "i/o timeout")
				time.Sleep(time.Minute)
				prompt.begin(0)
			})
		})
	}
}

// Empty frames are keep-alives on any channel, with or without an extended header.
func TestEmptyFrames(t *testing.T) {
	t.Parallel()
	_, url := startServer(t, newQueuePolicy(), nil)
	p := dialPeer(t, url)
	p.open()
	p.begin(0)
	p.writeEmpty()
	p.write(rawFrame(8, 2, 0, 9, nil))                 // a channel with no session
	p.write(rawFrame(16, 4, 0, 0, make([]byte, 8)))    // an extended header, no body
	p.write(rawFrame(12, 3, 0, 0, []byte{1, 2, 3, 4})) // the same, shorter
	p.echo(0)
}
