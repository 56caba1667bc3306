package engine

import (
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// The options that let a handler answer as qpidd does on the wire: AnyPLAIN,
// IdleTimeoutFromPeer, IgnoreEcho, OmitAvailable, and Link's SetSource, SetTarget and
// DetachedByPeer.

// AnyPLAIN offers ANONYMOUS then PLAIN and takes any user name and password, as
// qpidd with auth=no; a response without a NUL fails.
func TestAnyPLAIN(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		opts Options
		want []wire.Symbol
	}{
		{Options{AnyPLAIN: true}, []wire.Symbol{"ANONYMOUS", "PLAIN"}},
		{Options{AnyPLAIN: true, DenyAnonymous: true}, []wire.Symbol{"PLAIN"}},
		{Options{AnyPLAIN: true, Users: map[string]string{"joe": "secret"}}, []wire.Symbol{"PLAIN", "ANONYMOUS"}},
	} {
		_, url := startServer(t, NopHandler{}, &tc.opts)
		p := dialPeer(t, url)
		if m := p.saslInit("ANONYMOUS", nil); !slices.Equal(m.SASLServerMechanisms, tc.want) {
			t.Errorf("options %+v: mechanisms %v, want %v", tc.opts, m.SASLServerMechanisms, tc.want)
		}
	}

	for _, tc := range []struct {
		resp []byte
		user string
	}{
		{[]byte("\x00bob\x00anything"), "bob"},
		{[]byte("admin\x00bob\x00"), "admin"},
		{[]byte("\x00\x00"), ""},
	} {
		pol := newRecordingPolicy()
		_, url := startServer(t, pol, &Options{AnyPLAIN: true})
		p := dialPeer(t, url)
		p.saslInit("PLAIN", tc.resp)
		p.wantSASLOutcome(wire.SASLCodeOK)
		p.open()
		if got := pol.nextOpened(t); got != (connInfo{user: tc.user, mechanism: "PLAIN"}) {
			t.Errorf("PLAIN %q: opened %+v, want user %q", tc.resp, got, tc.user)
		}
	}
	for _, resp := range [][]byte{nil, []byte("no-separator")} {
		_, url := startServer(t, NopHandler{}, &Options{AnyPLAIN: true})
		p := dialPeer(t, url)
		p.saslInit("PLAIN", resp)
		p.wantSASLOutcome(wire.SASLCodeAuth)
		p.wantClosedSocket()
	}
}

// IdleTimeoutFromPeer announces the client's idle time-out back and closes a client
// silent for twice as long; a client that announces none is never closed.
func TestIdleTimeoutFromPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewServer(newQueuePolicy(), &Options{IdleTimeoutFromPeer: true})
		defer s.Close()

		quiet := pipePeer(t, s)
		if o := quiet.open(); o.IdleTimeOut != 0 {
			t.Fatalf("announced idle-time-out %d to a client that announced none, want 0", o.IdleTimeOut)
		}

		p := pipePeer(t, s)
		o := peerOpen()
		o.IdleTimeOut = 5000
		if got := p.openWith(o); got.IdleTimeOut != 5000 {
			t.Fatalf("announced idle-time-out %d to a client that announced 5000, want 5000", got.IdleTimeOut)
		}
		start := time.Now()
		// The server keeps the client alive meanwhile: empty frames, nothing else.
		p.wantClose(wire.ErrCondResourceLimitExceeded)
		if d := time.Since(start); d != 10*time.Second {
			t.Fatalf("closed after %v, want twice the client's 5s", d)
		}
		time.Sleep(time.Minute)
		quiet.begin(0) // still open
	})
}

// IgnoreEcho leaves echo flows unanswered; OmitAvailable leaves available out of
// the server's flows where it sends.
func TestIgnoreEchoOmitAvailable(t *testing.T) {
	t.Parallel()
	pol := newQueuePolicy()
	pol.fill(t, "q", 2, 10)
	_, url := startServer(t, pol, &Options{IgnoreEcho: true, OmitAvailable: true})
	p := dialPeer(t, url)
	p.open()
	p.begin(0)
	p.attach(0, receiverAttach("r", 0, "q"))
	f := linkFlow(0, 0, 1)
	f.Echo = true
	p.writeFrame(0, f)
	p.receive(1)
	next := uint32(0)
	p.writeFrame(0, &wire.Flow{NextIncomingID: &next, IncomingWindow: 1 << 20, OutgoingWindow: 1 << 20, Echo: true})
	// A drain is answered all the same, without available.
	f = linkFlow(0, 1, 5)
	f.Drain, f.Echo = true, true
	p.writeFrame(0, f)
	p.receive(1)
	answer, fr := readFrame[*wire.Flow](p)
	if !answer.Drain || answer.LinkCredit == nil || *answer.LinkCredit != 0 || answer.DeliveryCount == nil || *answer.DeliveryCount != 6 {
		t.Fatalf("got %v, want the drain answered with credit 0 and delivery-count 6", fr)
	}
	if answer.Available != nil {
		t.Errorf("the drain answer carries available %d, want it left out", *answer.Available)
	}
	p.wantIdle(100 * time.Millisecond) // no echo answer came before or after
}

// termPolicy answers attaches with termini of its own and records how links went.
type termPolicy struct {
	NopHandler
	mu     sync.Mutex
	byPeer map[string]bool
	closed map[string]bool
}

func (p *termPolicy) Attach(l *Link) error {
	l.SetSource(&wire.Source{Address: "src-by-server", ExpiryPolicy: wire.TerminusExpiryPolicySessionEnd})
	l.SetTarget(&wire.Target{Address: "", ExpiryPolicy: wire.TerminusExpiryPolicySessionEnd})
	if l.Name() == "refused" {
		return &wire.Error{Condition: wire.ErrCondNotFound, Description: "no"}
	}
	return nil
}

func (p *termPolicy) LinkDetached(l *Link, _ *wire.Error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.byPeer[l.Name()] = l.DetachedByPeer()
	p.closed[l.Name()] = l.ClosedByPeer()
}

// A handler's own termini are answered as set, on accepted and refused links
// alike (a refused link's node side null); DetachedByPeer tells a link the peer
// detached from one that went with its session, ClosedByPeer a detach with closed
// set.
func TestOwnTerminiAndDetachedByPeer(t *testing.T) {
	t.Parallel()
	pol := &termPolicy{byPeer: map[string]bool{}, closed: map[string]bool{}}
	_, url := startServer(t, pol, nil)
	p := dialPeer(t, url)
	p.open()
	p.begin(0)
	got := p.attach(0, receiverAttach("detached", 0, "q"))
	if got.Source == nil || got.Source.Address != "src-by-server" || got.Target == nil || got.Target.Address != "" {
		t.Fatalf("answer %+v %+v, want the handler's termini", got.Source, got.Target)
	}
	got = p.attach(0, receiverAttach("refused", 1, "q"))
	if got.Source != nil || got.Target == nil || got.Target.ExpiryPolicy != wire.TerminusExpiryPolicySessionEnd {
		t.Fatalf("refusal %+v %+v, want a null source and the handler's target", got.Source, got.Target)
	}
	p.wantDetach(wire.ErrCondNotFound)
	p.attach(0, receiverAttach("ended", 2, "q"))
	p.attach(0, receiverAttach("detached-open", 3, "q"))
	p.writeFrame(0, &wire.Detach{Handle: 0, Closed: true})
	readFrame[*wire.Detach](p)
	p.writeFrame(0, &wire.Detach{Handle: 3})
	readFrame[*wire.Detach](p)
	p.writeFrame(0, &wire.End{})
	readFrame[*wire.End](p)
	waitFor(t, "both links detached", func() bool {
		pol.mu.Lock()
		defer pol.mu.Unlock()
		return len(pol.byPeer) == 3
	})
	pol.mu.Lock()
	defer pol.mu.Unlock()
	if !pol.byPeer["detached"] || !pol.byPeer["detached-open"] || pol.byPeer["ended"] {
		t.Errorf("DetachedByPeer: %v, want true for the detached links, false for the one its session took", pol.byPeer)
	}
	if !pol.closed["detached"] || pol.closed["detached-open"] || pol.closed["ended"] {
		t.Errorf("ClosedByPeer: %v, want true for the link detached with closed set only", pol.closed)
	}
}

// SettleOnDetach settles what the peer left unsettled before the detach answer.
func TestSettleOnDetach(t *testing.T) {
	t.Parallel()
	pol := newQueuePolicy()
	pol.fill(t, "q", 3, 10)
	_, url := startServer(t, pol, &Options{SettleOnDetach: true})
	p := dialPeer(t, url)
	p.open()
	p.begin(0)
	p.attach(0, receiverAttach("r", 0, "q"))
	p.writeFrame(0, linkFlow(0, 0, 3))
	ds := p.receive(3)
	p.writeFrame(0, &wire.Disposition{Role: wire.RoleReceiver, First: ds[1].ID, Settled: true, State: &wire.Accepted{}})
	p.writeFrame(0, &wire.Detach{Handle: 0, Closed: true})
	for _, want := range []uint32{ds[0].ID, ds[2].ID} {
		d, fr := readFrame[*wire.Disposition](p)
		if d.Role != wire.RoleSender || d.First != want || (d.Last != nil && *d.Last != want) || !d.Settled || d.State != nil {
			t.Fatalf("got %v, want delivery %d settled by the server without state", fr, want)
		}
	}
	readFrame[*wire.Detach](p)
}
