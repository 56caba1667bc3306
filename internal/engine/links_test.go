package engine

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// fill queues n messages at addr in the policy.
func (p *queuePolicy) fill(t testing.TB, addr string, n int, size int) [][]byte {
	t.Helper()
	var out [][]byte
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range n {
		body := bytes.Repeat([]byte{byte('a' + i%26)}, size)
		m := message(t, body)
		p.queues[addr] = append(p.queues[addr], queued{payload: m})
		out = append(out, m)
	}
	return out
}

func (p *queuePolicy) outcomeCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.outcomes)
}

// serverLink returns the server's link of that name on the newest connection.
func serverLink(t testing.TB, s *Server, name string) *Link {
	t.Helper()
	for _, l := range newestConn(t, s).Links() {
		if l.Name() == name {
			return l
		}
	}
	t.Fatalf("no link %q on the server", name)
	return nil
}

func TestDispositionRange(t *testing.T) {
	t.Parallel()
	pol := newQueuePolicy()
	srv, url := startServer(t, pol, nil)
	pol.fill(t, "q", 5, 10)
	p := dialPeer(t, url)
	p.open()
	p.begin(0)
	p.attach(0, receiverAttach("r", 0, "q"))
	p.writeFrame(0, linkFlow(0, 0, 10))
	ds := p.receive(5)
	for i, d := range ds {
		if d.Settled {
			t.Fatalf("delivery %d arrived settled; the link is unsettled", i)
		}
		if i > 0 && d.ID != ds[i-1].ID+1 {
			t.Fatalf("delivery-ids %d then %d are not consecutive", ds[i-1].ID, d.ID)
		}
	}
	l := serverLink(t, srv, "r")
	if n := len(l.Unsettled()); n != 5 {
		t.Fatalf("server has %d unsettled deliveries, want 5", n)
	}
	// One disposition settles all five.
	last := ds[4].ID
	p.writeFrame(0, &wire.Disposition{Role: wire.RoleReceiver, First: ds[0].ID, Last: &last, Settled: true, State: &wire.Accepted{}})
	p.echo(0)
	if n := len(l.Unsettled()); n != 0 {
		t.Fatalf("server has %d unsettled deliveries after a disposition over the range, want 0", n)
	}
	if n := pol.outcomeCount(); n != 5 {
		t.Fatalf("handler heard %d outcomes, want 5", n)
	}

	// A hostile range over every delivery-id must cost what the table holds, not
	// four billion steps; and a range that wraps around zero is a range too.
	pol.fill(t, "q", 3, 10)
	p.writeFrame(0, linkFlow(0, 5, 10))
	p.receive(3)
	hostile := uint32(math.MaxUint32)
	p.writeFrame(0, &wire.Disposition{Role: wire.RoleReceiver, First: 0, Last: &hostile, Settled: false, State: &wire.Received{}})
	wrapLast := uint32(1)
	p.writeFrame(0, &wire.Disposition{Role: wire.RoleReceiver, First: math.MaxUint32 - 1, Last: &wrapLast, Settled: true, State: &wire.Rejected{}})
	p.echo(0) // bounded by the peer's read timeout
	if n := len(l.Unsettled()); n != 3 {
		t.Fatalf("server has %d unsettled deliveries, want the 3 outside the wrapped range", n)
	}
	p.writeFrame(0, &wire.Disposition{Role: wire.RoleReceiver, First: 0, Last: &hostile, Settled: true, State: &wire.Accepted{}})
	p.echo(0)
	if n := len(l.Unsettled()); n != 0 {
		t.Fatalf("server has %d unsettled deliveries after settling every id, want 0", n)
	}
	if n := pol.outcomeCount(); n != 8 {
		t.Fatalf("handler heard %d outcomes, want 8", n)
	}
}

func TestEchoFlow(t *testing.T) {
	t.Parallel()
	pol := newQueuePolicy()
	_, url := startServer(t, pol, &Options{SessionWindow: 300})
	p := dialPeer(t, url)
	p.open()
	p.begin(0)

	// Session echo: the server's session state, no link.
	f := p.echo(0)
	if f.IncomingWindow != 300 || f.NextIncomingID == nil || *f.NextIncomingID != 0 {
		t.Fatalf("session echo %+v, want incoming-window 300 and next-incoming-id 0", f)
	}

	// The client sends: the echo carries the credit the policy granted.
	sa := p.attach(0, senderAttach("s", 0, "q"))
	granted, _ := readFrame[*wire.Flow](p)
	if granted.LinkCredit == nil || *granted.LinkCredit != 100 {
		t.Fatalf("flow after attach %+v, want credit 100", granted)
	}
	ef := linkFlow(0, 0, 0)
	ef.Echo = true
	p.writeFrame(0, ef)
	f, _ = readFrame[*wire.Flow](p)
	if f.Handle == nil || *f.Handle != sa.Handle || f.LinkCredit == nil || *f.LinkCredit != 100 || f.DeliveryCount == nil || *f.DeliveryCount != 0 {
		t.Fatalf("link echo %+v, want handle %d, credit 100, delivery-count 0", f, sa.Handle)
	}

	// The client receives: the echo carries the server's delivery-count and the
	// credit as the server sees it.
	ra := p.attach(0, receiverAttach("r", 1, "empty"))
	ef = linkFlow(1, 0, 7)
	ef.Echo = true
	p.writeFrame(0, ef)
	f, _ = readFrame[*wire.Flow](p)
	if f.Handle == nil || *f.Handle != ra.Handle || f.LinkCredit == nil || *f.LinkCredit != 7 || f.DeliveryCount == nil || *f.DeliveryCount != 0 || f.Available == nil {
		t.Fatalf("link echo %+v, want handle %d, credit 7, delivery-count 0, available", f, ra.Handle)
	}
	// Without echo, no answer.
	p.writeFrame(0, linkFlow(1, 0, 8))
	p.echo(0)
}

func TestDrain(t *testing.T) {
	t.Parallel()
	pol := newQueuePolicy()
	_, url := startServer(t, pol, nil)
	p := dialPeer(t, url)
	p.open()
	p.begin(0)
	a := p.attach(0, receiverAttach("r", 0, "d"))

	// Nothing queued: the server spends all the credit at once.
	df := linkFlow(0, 0, 10)
	df.Drain = true
	p.writeFrame(0, df)
	f, _ := readFrame[*wire.Flow](p)
	if f.Handle == nil || *f.Handle != a.Handle || *f.DeliveryCount != 10 || *f.LinkCredit != 0 || !f.Drain {
		t.Fatalf("answer to drain %+v, want delivery-count 10, credit 0, drain", f)
	}

	// Two queued: they are sent, then the rest of the credit is spent.
	pol.fill(t, "d", 2, 10)
	df = linkFlow(0, 10, 10)
	df.Drain = true
	p.writeFrame(0, df)
	p.receive(2)
	f, _ = readFrame[*wire.Flow](p)
	if *f.DeliveryCount != 20 || *f.LinkCredit != 0 {
		t.Fatalf("answer to drain %+v, want delivery-count 20, credit 0", f)
	}

	// Credit granted after a drain works as usual.
	pol.fill(t, "d", 1, 10)
	p.writeFrame(0, linkFlow(0, 20, 1))
	p.receive(1)
}

func TestAbortedTransferDiscarded(t *testing.T) {
	t.Parallel()
	pol := newQueuePolicy()
	_, url := startServer(t, pol, nil)
	p := dialPeer(t, url)
	p.open()
	p.begin(0)
	p.attach(0, senderAttach("s", 0, "ab"))
	readFrame[*wire.Flow](p)
	p.writeTransfer(0, &wire.Transfer{Handle: 0, DeliveryID: u32(0), DeliveryTag: []byte("0"), MessageFormat: u32(0), More: true}, []byte("half a mess"))
	p.writeTransfer(0, &wire.Transfer{Handle: 0, More: true}, []byte("age and more"))
	p.writeTransfer(0, &wire.Transfer{Handle: 0, Aborted: true}, nil)
	ok := message(t, []byte("whole"))
	p.writeTransfer(0, &wire.Transfer{Handle: 0, DeliveryID: u32(1), DeliveryTag: []byte("1"), MessageFormat: u32(0)}, ok)
	d, _ := readFrame[*wire.Disposition](p)
	if d.First != 1 || (d.Last != nil && *d.Last != 1) || !d.Settled {
		t.Fatalf("disposition %+v, want delivery 1 settled (none for the aborted one)", d)
	}
	pol.mu.Lock()
	q := pol.queues["ab"]
	pol.mu.Unlock()
	if len(q) != 1 || !bytes.Equal(q[0].payload, ok) {
		t.Fatalf("queue holds %d messages, want only the whole one", len(q))
	}
}

// abortPolicy records the links on which an AbortHandler heard of an aborted delivery.
type abortPolicy struct {
	*queuePolicy
	aborted chan string
}

func (p *abortPolicy) Aborted(l *Link) { p.aborted <- l.Address() }

// An AbortHandler hears of each aborted delivery, once the abort arrives and instead
// of Delivery; the delivery has used its credit (the link's delivery-count counts it).
func TestAbortHandlerHearsAbort(t *testing.T) {
	t.Parallel()
	pol := &abortPolicy{queuePolicy: newQueuePolicy(), aborted: make(chan string, 4)}
	_, url := startServer(t, pol, nil)
	p := dialPeer(t, url)
	p.open()
	p.begin(0)
	p.attach(0, senderAttach("s", 0, "ab"))
	readFrame[*wire.Flow](p)
	p.writeTransfer(0, &wire.Transfer{Handle: 0, DeliveryID: u32(0), DeliveryTag: []byte("0"), MessageFormat: u32(0), More: true}, []byte("half"))
	select {
	case addr := <-pol.aborted:
		t.Fatalf("Aborted(%q) before the abort arrived", addr)
	default:
	}
	p.writeTransfer(0, &wire.Transfer{Handle: 0, Aborted: true}, nil)
	// The echo's answer comes after the abort has been handled.
	p.echo(0)
	select {
	case addr := <-pol.aborted:
		if addr != "ab" {
			t.Fatalf("Aborted on link of %q, want ab", addr)
		}
	default:
		t.Fatalf("no Aborted for the aborted delivery")
	}
	pol.mu.Lock()
	n := len(pol.queues["ab"])
	pol.mu.Unlock()
	if n != 0 {
		t.Fatalf("the queue holds %d messages: the aborted delivery reached Delivery", n)
	}
}

// The engine sends a message larger than the max-message-size the peer announced in
// its attach, as qdrouterd and qpidd (Qpid Proton) do.
func TestPeerMaxMessageSizeNotEnforced(t *testing.T) {
	t.Parallel()
	pol := newQueuePolicy()
	_, url := startServer(t, pol, nil)
	pol.fill(t, "big", 1, 2000)
	p := dialPeer(t, url)
	p.open()
	p.begin(0)
	a := receiverAttach("r", 0, "big")
	a.MaxMessageSize = 100
	p.attach(0, a)
	p.writeFrame(0, linkFlow(0, 0, 1))
	if got := p.receive(1); len(got[0].Payload) <= 100 {
		t.Fatalf("received %d bytes, want the whole message above the peer's 100", len(got[0].Payload))
	}
}

func TestMultiFrameTransfers(t *testing.T) {
	t.Parallel()
	pol := newQueuePolicy()
	_, url := startServer(t, pol, &Options{MaxFrameSize: 1024})
	p := dialPeer(t, url)
	o := peerOpen()
	o.MaxFrameSize = 512
	p.openWith(o)
	p.begin(0)

	// Inbound: three frames, settled on the last one, makes one message.
	p.attach(0, senderAttach("s", 0, "mf"))
	readFrame[*wire.Flow](p)
	whole := message(t, bytes.Repeat([]byte("0123456789"), 200))
	p.writeTransfer(0, &wire.Transfer{Handle: 0, DeliveryID: u32(0), DeliveryTag: []byte("0"), MessageFormat: u32(0), More: true}, whole[:900])
	p.writeTransfer(0, &wire.Transfer{Handle: 0, DeliveryID: u32(0), More: true}, whole[900:1800])
	p.writeTransfer(0, &wire.Transfer{Handle: 0, Settled: true}, whole[1800:])
	p.echo(0) // no disposition for a delivery settled by its sender

	// Outbound: split to the peer's max-frame-size of 512.
	p.attach(0, receiverAttach("r", 1, "mf"))
	p.writeFrame(0, linkFlow(1, 0, 1))
	ds := p.receive(1)
	if !bytes.Equal(ds[0].Payload, whole) {
		t.Fatalf("reassembled %d bytes, want the %d sent", len(ds[0].Payload), len(whole))
	}
	if len(ds[0].Frames) < 4 {
		t.Fatalf("%d bytes came in %d frames; 512-byte frames need at least 4", len(whole), len(ds[0].Frames))
	}
	for i, f := range ds[0].Frames {
		if f.Size > 512 {
			t.Fatalf("frame %d is %d bytes, over the peer's max-frame-size 512", i, f.Size)
		}
		tr := f.Body.(*wire.Transfer)
		if i > 0 && (tr.DeliveryID != nil && *tr.DeliveryID != ds[0].ID) {
			t.Fatalf("frame %d names delivery %d, want %d", i, *tr.DeliveryID, ds[0].ID)
		}
	}
}

func TestSettlementModes(t *testing.T) {
	t.Parallel()
	pol := newQueuePolicy()
	_, url := startServer(t, pol, nil)
	p := dialPeer(t, url)
	p.open()
	p.begin(0)

	// A pre-settling sender: the mode is echoed and no disposition comes back.
	sa := senderAttach("settled-sender", 0, "sm")
	sa.SndSettleMode = wire.SenderSettleModeSettled
	if got := p.attach(0, sa); got.SndSettleMode != wire.SenderSettleModeSettled {
		t.Fatalf("attach answer snd-settle-mode %v, want settled", got.SndSettleMode)
	}
	readFrame[*wire.Flow](p)
	p.writeTransfer(0, &wire.Transfer{Handle: 0, DeliveryID: u32(0), DeliveryTag: []byte("0"), MessageFormat: u32(0), Settled: true}, message(t, []byte("a")))
	p.echo(0)

	// An unsettled sender, receiver settles first: one settled disposition.
	p.attach(0, senderAttach("unsettled-sender", 1, "sm"))
	readFrame[*wire.Flow](p)
	p.writeTransfer(0, &wire.Transfer{Handle: 1, DeliveryID: u32(1), DeliveryTag: []byte("1"), MessageFormat: u32(0)}, message(t, []byte("b")))
	d, _ := readFrame[*wire.Disposition](p)
	if d.First != 1 || !d.Settled || d.Role != wire.RoleReceiver {
		t.Fatalf("disposition %+v, want delivery 1 settled by the receiver", d)
	}
	if _, ok := d.State.(*wire.Accepted); !ok {
		t.Fatalf("disposition state %T, want accepted", d.State)
	}

	// A receiver asking for pre-settled deliveries gets them settled.
	ra := receiverAttach("settled-receiver", 2, "sm")
	ra.SndSettleMode = wire.SenderSettleModeSettled
	if got := p.attach(0, ra); got.SndSettleMode != wire.SenderSettleModeSettled {
		t.Fatalf("attach answer snd-settle-mode %v, want settled", got.SndSettleMode)
	}
	p.writeFrame(0, linkFlow(2, 0, 1))
	if ds := p.receive(1); !ds[0].Settled {
		t.Fatal("delivery on a settled link arrived unsettled")
	}

	// A receiver in rcv-settle-mode second: its unsettled outcome is answered by the
	// server settling, then the receiver settles.
	ra = receiverAttach("second-receiver", 3, "sm")
	ra.RcvSettleMode = wire.ReceiverSettleModeSecond
	if got := p.attach(0, ra); got.RcvSettleMode != wire.ReceiverSettleModeSecond {
		t.Fatalf("attach answer rcv-settle-mode %v, want second", got.RcvSettleMode)
	}
	p.writeFrame(0, linkFlow(3, 0, 1))
	ds := p.receive(1)
	if ds[0].Settled {
		t.Fatal("delivery on a second-mode link arrived settled")
	}
	p.writeFrame(0, &wire.Disposition{Role: wire.RoleReceiver, First: ds[0].ID, State: &wire.Accepted{}})
	d, _ = readFrame[*wire.Disposition](p)
	if d.First != ds[0].ID || !d.Settled || d.Role != wire.RoleSender {
		t.Fatalf("disposition %+v, want the server settling delivery %d", d, ds[0].ID)
	}
	p.writeFrame(0, &wire.Disposition{Role: wire.RoleReceiver, First: ds[0].ID, Settled: true, State: &wire.Accepted{}})
	p.echo(0)
}

func TestSessionWindows(t *testing.T) {
	t.Parallel()
	t.Run("server-respects-peer-incoming-window", func(t *testing.T) {
		t.Parallel()
		pol := newQueuePolicy()
		_, url := startServer(t, pol, nil)
		pol.fill(t, "w", 5, 10)
		p := dialPeer(t, url)
		p.open()
		b := p.beginWith(0, &wire.Begin{IncomingWindow: 2, OutgoingWindow: 100, HandleMax: 10})
		p.attach(0, receiverAttach("r", 0, "w"))
		p.writeFrame(0, &wire.Flow{NextIncomingID: u32(b.NextOutgoingID), IncomingWindow: 2, OutgoingWindow: 100, Handle: u32(0), DeliveryCount: u32(0), LinkCredit: u32(10)})
		p.receive(2)
		p.wantIdle(100e6)
		next := b.NextOutgoingID + 2
		p.writeFrame(0, &wire.Flow{NextIncomingID: &next, IncomingWindow: 2, OutgoingWindow: 100})
		p.receive(2)
		p.wantIdle(100e6)
		next += 2
		p.writeFrame(0, &wire.Flow{NextIncomingID: &next, IncomingWindow: 1000, OutgoingWindow: 100})
		p.receive(1)
	})
	t.Run("incoming-window-of-one-reopens", func(t *testing.T) {
		t.Parallel()
		pol := newQueuePolicy()
		_, url := startServer(t, pol, &Options{SessionWindow: 1})
		p := dialPeer(t, url)
		p.open()
		b := p.begin(0)
		if b.IncomingWindow != 1 {
			t.Fatalf("begin incoming-window %d, want 1", b.IncomingWindow)
		}
		p.attach(0, senderAttach("s", 0, "w1"))
		readFrame[*wire.Flow](p)
		for i := range uint32(3) {
			// A well-behaved sender waits for the window to reopen.
			p.writeTransfer(0, &wire.Transfer{Handle: 0, DeliveryID: u32(i), DeliveryTag: []byte{byte(i)}, MessageFormat: u32(0), Settled: true}, message(t, []byte("x")))
			f, fr := readFrame[*wire.Flow](p)
			if f.Handle != nil || f.NextIncomingID == nil || *f.NextIncomingID+f.IncomingWindow <= i+1 {
				t.Fatalf("after transfer %d: %v, want the session window reopened", i, fr)
			}
		}
		if d := pol.depth("w1"); d != 3 {
			t.Fatalf("queue holds %d messages, want 3", d)
		}
	})
	t.Run("go-amqp-with-window-of-one", func(t *testing.T) {
		t.Parallel()
		pol := newQueuePolicy()
		_, url := startServer(t, pol, &Options{SessionWindow: 1})
		c := dial(t, url, nil)
		ctx := ctxT(t)
		sess, err := c.NewSession(ctx, &amqp.SessionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		snd, err := sess.NewSender(ctx, "w1", nil)
		if err != nil {
			t.Fatal(err)
		}
		// go-amqp honours the session window and waits for it to reopen; bound the
		// wait here, as Send does not always return when its context expires.
		sent := make(chan error, 1)
		go func() {
			for i := range 3 {
				if err := snd.Send(ctx, amqp.NewMessage(fmt.Appendf(nil, "m%d", i)), nil); err != nil {
					sent <- fmt.Errorf("message %d: %w", i, err)
					return
				}
			}
			sent <- nil
		}()
		select {
		case err := <-sent:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("go-amqp is stuck behind a session window of 1 that never reopens")
		}
	})
}

func TestPeerErrorsEcho(t *testing.T) {
	t.Parallel()
	pol := newQueuePolicy()
	_, url := startServer(t, pol, nil)
	p := dialPeer(t, url)
	p.open()
	p.begin(0)
	p.attach(0, senderAttach("s", 0, "q"))
	readFrame[*wire.Flow](p)

	// detach with an error: answered, and the handler hears the peer's error.
	p.writeFrame(0, &wire.Detach{Handle: 0, Closed: true, Error: &wire.Error{Condition: wire.ErrCondNotAllowed, Description: "bye"}})
	d := p.wantDetach("")
	if !d.Closed {
		t.Fatal("answer to a closing detach is not closing")
	}
	// end with an error: answered.
	p.writeFrame(0, &wire.End{Error: &wire.Error{Condition: wire.ErrCondResourceLimitExceeded}})
	p.wantEnd("")
	// close with an error: answered, then the socket goes.
	p.writeFrame(0, &wire.Close{Error: &wire.Error{Condition: wire.ErrCondInternalError, Description: "client failed"}})
	p.wantClose("")
	p.wantClosedSocket()
	waitFor(t, "the handler to hear Closed", func() bool {
		pol.mu.Lock()
		defer pol.mu.Unlock()
		return len(pol.closed) == 1
	})
	pol.mu.Lock()
	defer pol.mu.Unlock()
	var re *RemoteError
	if !errors.As(pol.closed[0], &re) || re.Err.Condition != wire.ErrCondInternalError {
		t.Fatalf("Closed got %v, want the peer's amqp:internal-error", pol.closed[0])
	}
	if len(pol.detached) != 1 || pol.detached[0] != "s" {
		t.Fatalf("handler heard LinkDetached for %v, want [s]", pol.detached)
	}
}

// A session the server ended is dead to the server: frames the peer sent before it
// read the end are ignored, never answered (part 2.5.5).
func TestFramesAfterSessionErrorIgnored(t *testing.T) {
	t.Parallel()
	pol := newQueuePolicy()
	_, url := startServer(t, pol, nil)
	p := dialPeer(t, url)
	p.open()
	p.begin(0)
	p.attach(0, senderAttach("a", 0, "q"))
	readFrame[*wire.Flow](p)
	var b []byte
	b = append(b, encodeFrame(t, wire.FrameAMQP, 0, senderAttach("dup", 0, "q"), nil)...)
	b = append(b, encodeFrame(t, wire.FrameAMQP, 0, senderAttach("late", 1, "q"), nil)...)
	b = append(b, encodeFrame(t, wire.FrameAMQP, 0, linkFlow(1, 0, 5), nil)...)
	b = append(b, encodeFrame(t, wire.FrameAMQP, 0, &wire.Detach{Handle: 0, Closed: true}, nil)...)
	p.write(b)
	p.wantEnd(wire.ErrCondHandleInUse)
	p.writeFrame(0, &wire.End{})
	// The channel is free again; the next frame is the answer to this begin.
	p.begin(0)
	pol.mu.Lock()
	defer pol.mu.Unlock()
	for _, name := range pol.detached {
		if name == "late" {
			t.Fatal("the handler was asked to attach a link on a session the server had ended")
		}
	}
}

// Frames for a link the server has detached may cross the detach on the wire; they
// must not end the session (part 2.6.5: the handle stays attached until the peer's
// detach).
func TestFramesCrossingServerDetach(t *testing.T) {
	t.Parallel()
	t.Run("flow-after-link-close", func(t *testing.T) {
		t.Parallel()
		pol := newQueuePolicy()
		srv, url := startServer(t, pol, nil)
		p := dialPeer(t, url)
		p.open()
		p.begin(0)
		p.attach(0, receiverAttach("r", 0, "q"))
		p.echo(0) // the attach has been handled
		serverLink(t, srv, "r").Close(&wire.Error{Condition: wire.ErrCondResourceDeleted, Description: "queue deleted"})
		ef := linkFlow(0, 0, 10)
		ef.Echo = true
		p.writeFrame(0, ef) // crossing the detach
		p.wantDetach(wire.ErrCondResourceDeleted)
		p.writeFrame(0, &wire.Detach{Handle: 0, Closed: true})
		p.echo(0) // not an end
	})
	t.Run("flow-after-refused-attach", func(t *testing.T) {
		t.Parallel()
		pol := newQueuePolicy()
		pol.refuse["forbidden"] = &wire.Error{Condition: wire.ErrCondNotFound, Description: "no such node"}
		_, url := startServer(t, pol, nil)
		p := dialPeer(t, url)
		p.open()
		p.begin(0)
		// A pipelining client (Proton) sends attach and credit together.
		ef := linkFlow(0, 0, 10)
		ef.Echo = true
		p.write(append(encodeFrame(t, wire.FrameAMQP, 0, receiverAttach("r", 0, "forbidden"), nil), encodeFrame(t, wire.FrameAMQP, 0, ef, nil)...))
		a, _ := readFrame[*wire.Attach](p)
		if a.Source != nil {
			t.Fatalf("refusing attach has source %+v, want none", a.Source)
		}
		p.wantDetach(wire.ErrCondNotFound)
		p.echo(0) // no flow on the detached handle before it
		p.writeFrame(0, &wire.Detach{Handle: 0, Closed: true})
		p.echo(0)
	})
	t.Run("transfers-queued-behind-session-window", func(t *testing.T) {
		t.Parallel()
		pol := newQueuePolicy()
		srv, url := startServer(t, pol, nil)
		pol.fill(t, "w", 3, 10)
		p := dialPeer(t, url)
		p.open()
		b := p.beginWith(0, &wire.Begin{IncomingWindow: 1, OutgoingWindow: 100, HandleMax: 10})
		p.attach(0, receiverAttach("r", 0, "w"))
		p.writeFrame(0, &wire.Flow{NextIncomingID: u32(b.NextOutgoingID), IncomingWindow: 1, OutgoingWindow: 100, Handle: u32(0), DeliveryCount: u32(0), LinkCredit: u32(10)})
		p.receive(1) // two more wait for the window
		serverLink(t, srv, "r").Close(&wire.Error{Condition: wire.ErrCondResourceDeleted})
		p.wantDetach(wire.ErrCondResourceDeleted)
		// Reopening the window must not send transfers on the detached handle.
		next := b.NextOutgoingID + 1
		p.writeFrame(0, &wire.Flow{NextIncomingID: &next, IncomingWindow: 100, OutgoingWindow: 100, Echo: true})
		if f, fr := readFrame[*wire.Flow](p); f.Handle != nil {
			t.Fatalf("got %v, want the session echo", fr)
		}
		p.writeFrame(0, &wire.Detach{Handle: 0, Closed: true})
		// Nothing is lost: the unsent and unsettled deliveries went back to the queue.
		waitFor(t, "the deliveries to be requeued", func() bool { return pol.depth("w") == 3 })
	})
}

// After the server sends close it sends nothing more (part 2.4.3), whatever the
// handler or the peer do meanwhile.
func TestNothingAfterClose(t *testing.T) {
	t.Parallel()
	pol := newQueuePolicy()
	srv, url := startServer(t, pol, nil)
	p := dialPeer(t, url)
	p.open()
	p.begin(0)
	p.attach(0, receiverAttach("r", 0, "q"))
	p.writeFrame(0, linkFlow(0, 0, 10))
	p.echo(0)
	l := serverLink(t, srv, "r")
	conn := newestConn(t, srv)
	conn.Close(&wire.Error{Condition: wire.ErrCondConnectionForced, Description: "going down"})
	if _, err := l.Send(message(t, []byte("late")), false, nil); !errors.Is(err, ErrLinkClosed) {
		t.Fatalf("Send after close: %v, want ErrLinkClosed", err)
	}
	// The peer has not read the close yet and attaches another link.
	p.writeFrame(0, receiverAttach("r2", 1, "q"))
	p.wantClose(wire.ErrCondConnectionForced)
	p.writeFrame(0, &wire.Close{})
	p.wantClosedSocket()

	// The peer answered the close, but the connection did not end in order: the
	// handler and Err hear the condition the server closed it with.
	<-conn.Done()
	var we *wire.Error
	if err := conn.Err(); !errors.As(err, &we) || we.Condition != wire.ErrCondConnectionForced {
		t.Fatalf("Err() = %v, want the server's connection-forced", err)
	}
	waitFor(t, "the handler to hear Closed", func() bool {
		pol.mu.Lock()
		defer pol.mu.Unlock()
		return len(pol.closed) > 0
	})
	pol.mu.Lock()
	defer pol.mu.Unlock()
	if !errors.As(pol.closed[0], &we) || we.Condition != wire.ErrCondConnectionForced {
		t.Fatalf("Closed got %v, want the server's connection-forced", pol.closed[0])
	}
}

// A frame of exactly max-frame-size is fine (the limit is inclusive), and so is a
// message of exactly max-message-size.
func TestLimitsAreInclusive(t *testing.T) {
	t.Parallel()
	pol := newQueuePolicy()
	_, url := startServer(t, pol, &Options{MaxFrameSize: 4096, MaxMessageSize: 5000})
	p := dialPeer(t, url)
	p.open()
	p.begin(0)
	p.attach(0, senderAttach("s", 0, "lim"))
	readFrame[*wire.Flow](p)
	b := encodeFrame(t, wire.FrameAMQP, 0, &wire.Transfer{Handle: 0, DeliveryID: u32(0), DeliveryTag: []byte("t"), MessageFormat: u32(0), More: true}, nil)
	first := 4096 - len(b)
	b = encodeFrame(t, wire.FrameAMQP, 0, &wire.Transfer{Handle: 0, DeliveryID: u32(0), DeliveryTag: []byte("t"), MessageFormat: u32(0), More: true}, make([]byte, first))
	if len(b) != 4096 {
		t.Fatalf("built a %d-byte frame", len(b))
	}
	p.write(b)
	p.writeTransfer(0, &wire.Transfer{Handle: 0}, make([]byte, 5000-first))
	d, _ := readFrame[*wire.Disposition](p)
	if _, ok := d.State.(*wire.Accepted); !ok || !d.Settled {
		t.Fatalf("disposition %+v, want accepted", d)
	}
	if pol.depth("lim") != 1 {
		t.Fatal("the message did not arrive")
	}
}

// A link's flow counts the deliveries the server has sent; deliveries still waiting
// for the peer's session window have not been sent, so the flow (a drain's answer or
// an echo) must wait behind them (part 2.6.7).
func TestLinkFlowWaitsForQueuedTransfers(t *testing.T) {
	t.Parallel()
	for _, drain := range []bool{true, false} {
		t.Run(fmt.Sprintf("drain=%v", drain), func(t *testing.T) {
			t.Parallel()
			pol := newQueuePolicy()
			_, url := startServer(t, pol, nil)
			pol.fill(t, "dq", 3, 10)
			p := dialPeer(t, url)
			p.open()
			b := p.beginWith(0, &wire.Begin{IncomingWindow: 1, OutgoingWindow: 100, HandleMax: 10})
			p.attach(0, receiverAttach("r", 0, "dq"))
			f := &wire.Flow{NextIncomingID: u32(b.NextOutgoingID), IncomingWindow: 1, OutgoingWindow: 100,
				Handle: u32(0), DeliveryCount: u32(0), LinkCredit: u32(10), Drain: drain, Echo: !drain}
			p.writeFrame(0, f)
			p.receive(1)
			p.wantIdle(100 * time.Millisecond) // two deliveries wait for the window, and so does the flow
			next := b.NextOutgoingID + 1
			p.writeFrame(0, &wire.Flow{NextIncomingID: &next, IncomingWindow: 100, OutgoingWindow: 100})
			p.receive(2)
			got, fr := readFrame[*wire.Flow](p)
			wantDC, wantCredit := uint32(3), uint32(7)
			if drain {
				wantDC, wantCredit = 10, 0
			}
			if got.Handle == nil || *got.DeliveryCount != wantDC || *got.LinkCredit != wantCredit || got.Drain != drain {
				t.Fatalf("got %v, want delivery-count %d, credit %d, drain %v", fr, wantDC, wantCredit, drain)
			}
		})
	}
}

// closeInAttach closes every link from within Attach.
type closeInAttach struct{ NopHandler }

func (closeInAttach) Attach(l *Link) error {
	l.Close(&wire.Error{Condition: wire.ErrCondNotFound, Description: "gone at once"})
	return nil
}

// A handler that closes a link while its attach is still being decided gets the
// detach written after the attach answer, never before it.
func TestCloseDuringAttachFollowsTheAnswer(t *testing.T) {
	_, url := startServer(t, closeInAttach{}, nil)
	peer := dialPeer(t, url)
	peer.open()
	peer.begin(0)
	got := peer.attach(0, receiverAttach("r", 0, "q"))
	if got.Source == nil {
		t.Fatalf("the answer has a null source: a refusal, not an accepted link")
	}
	peer.wantDetach(wire.ErrCondNotFound)
}
