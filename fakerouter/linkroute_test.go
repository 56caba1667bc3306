package fakerouter

import (
	"context"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/fakebroker"
	"github.com/amqp1kit/amqp1kit/internal/engine"
	"github.com/amqp1kit/amqp1kit/internal/frameclient"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// The link-routing tests: a recording broker (an engine server whose handler notes
// what the router asks of it) shows what the router passes on; the fake broker
// serves where a whole broker is wanted. What a client sees of the real qdrouterd
// and qpidd is in conformance/linkroute_cases.go.

func lrCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// recBroker is a route container that records the router's open, attaches and
// detaches, answers attaches by echoing them (or refuses, or holds them), gives a
// router sender 100 credit and accepts what it receives.
type recBroker struct {
	engine.NopHandler
	srv  *engine.Server
	addr string

	mu       sync.Mutex
	opens    []*wire.Open
	attached []recAttach
	detached []recDetach
	links    map[string]*engine.Link
	received []string
	refuse   *wire.Error
	hold     chan struct{} // Attach waits for it when set
	changed  chan struct{}
}

type recAttach struct {
	name string
	role wire.Role // the broker's
	src  *wire.Source
	tgt  *wire.Target
	snd  wire.SenderSettleMode
	rcv  wire.ReceiverSettleMode
	conn *engine.Conn
}

type recDetach struct {
	name           string
	byPeer, closed bool
	err            *wire.Error
}

func runRecBroker(t *testing.T) *recBroker {
	t.Helper()
	b := &recBroker{links: map[string]*engine.Link{}, changed: make(chan struct{})}
	b.srv = engine.NewServer(b, &engine.Options{ContainerID: "rec-broker"})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	b.addr = ln.Addr().String()
	go func() { _ = b.srv.Serve(ln) }()
	t.Cleanup(func() {
		b.mu.Lock()
		if b.hold != nil {
			close(b.hold)
			b.hold = nil
		}
		b.mu.Unlock()
		_ = b.srv.Close()
	})
	return b
}

func (b *recBroker) notifyLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// wait blocks until cond holds (under b.mu) or the test's time is up.
func (b *recBroker) wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx := lrCtx(t)
	for {
		b.mu.Lock()
		ok, ch := cond(), b.changed
		b.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("waiting for %s", what)
		}
	}
}

func (b *recBroker) Opened(c *engine.Conn) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.opens = append(b.opens, c.RemoteOpen())
	b.notifyLocked()
	return nil
}

func (b *recBroker) Attach(l *engine.Link) error {
	b.mu.Lock()
	b.attached = append(b.attached, recAttach{name: l.Name(), role: l.Role(), src: l.Source(), tgt: l.Target(),
		snd: l.SenderSettleMode(), rcv: l.ReceiverSettleMode(), conn: l.Conn()})
	hold, refuse := b.hold, b.refuse
	b.links[l.Name()] = l
	b.notifyLocked()
	b.mu.Unlock()
	if hold != nil {
		<-hold
	}
	if refuse != nil {
		return refuse
	}
	if l.Role() == wire.RoleReceiver {
		_ = l.SetCredit(100)
	}
	return nil
}

func (b *recBroker) LinkDetached(l *engine.Link, err *wire.Error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.detached = append(b.detached, recDetach{name: l.Name(), byPeer: l.DetachedByPeer(), closed: l.ClosedByPeer(), err: err})
	b.notifyLocked()
}

func (b *recBroker) Delivery(_ *engine.Link, d *engine.Delivery) {
	m := new(wire.Message)
	_ = m.Unmarshal(d.Payload)
	b.mu.Lock()
	if len(m.Data) > 0 {
		b.received = append(b.received, string(m.Data[0]))
	}
	b.notifyLocked()
	b.mu.Unlock()
	if !d.Settled {
		d.Settle(&wire.Accepted{})
	}
}

// lrRouter runs a router with routes to the connector "broker" at addr.
func lrRouter(t *testing.T, addr string, routes ...LinkRoute) *Router {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	r := RunT(t, &Options{LinkRoutes: routes,
		Connectors: []Connector{{Name: "broker", Host: host, Port: port, Role: "route-container"}}})
	require.NoError(t, r.WaitForConnector(lrCtx(t), "broker"))
	return r
}

func bothWays(prefix, conn string) []LinkRoute {
	return []LinkRoute{{Prefix: prefix, Direction: "in", Connection: conn}, {Prefix: prefix, Direction: "out", Connection: conn}}
}

// lrClient is a hand-written client connection with one session.
type lrClient struct {
	*frameclient.Conn
	t    *testing.T
	next uint32
}

func lrDial(t *testing.T, r *Router, container string) *lrClient {
	t.Helper()
	c, err := frameclient.Dial(r.Addr())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	_, err = c.Open(&wire.Open{ContainerID: container, MaxFrameSize: 65536, ChannelMax: 7})
	require.NoError(t, err)
	_, err = c.Begin(0, &wire.Begin{IncomingWindow: 5000, OutgoingWindow: 5000, HandleMax: 1023})
	require.NoError(t, err)
	return &lrClient{Conn: c, t: t}
}

// attach sends a with the next handle and returns the router's answer.
func (c *lrClient) attach(a *wire.Attach) *wire.Attach {
	c.t.Helper()
	a.Handle = c.next
	c.next++
	if a.Role == wire.RoleSender && a.InitialDeliveryCount == nil {
		zero := uint32(0)
		a.InitialDeliveryCount = &zero
	}
	peer, err := c.Attach(0, a)
	require.NoError(c.t, err)
	return peer
}

func (c *lrClient) detach(t *testing.T) *wire.Detach {
	t.Helper()
	d, _, err := frameclient.Expect[*wire.Detach](c.Conn)
	require.NoError(t, err)
	return d
}

func (c *lrClient) flow(handle, dc, credit uint32, drain bool) {
	c.t.Helper()
	next := uint32(0)
	require.NoError(c.t, c.Write(0, &wire.Flow{NextIncomingID: &next, IncomingWindow: 5000, OutgoingWindow: 5000,
		Handle: &handle, DeliveryCount: &dc, LinkCredit: &credit, Drain: drain}))
}

// The router passes an attach on as qdrouterd does: "<name>@<container-id>",
// snd-settle-mode mixed and rcv-settle-mode first whatever the client asked, the
// termini as Proton copies them (expiry policy written out, no default-outcome), on
// a connection it opened as qdrouterd opens one.
func TestLinkRouteAttachForwarded(t *testing.T) {
	t.Parallel()
	b := runRecBroker(t)
	r := lrRouter(t, b.addr, bothWays("q", "broker")...)
	c := lrDial(t, r, "lr-client")
	peer := c.attach(&wire.Attach{Name: "r1", Role: wire.RoleReceiver, SndSettleMode: wire.SenderSettleModeSettled,
		RcvSettleMode: wire.ReceiverSettleModeSecond, MaxMessageSize: 1000, Properties: wire.Fields{"p": "v"},
		Source: &wire.Source{Address: "q.a", Capabilities: []wire.Symbol{"queue"}, DefaultOutcome: &wire.Released{}},
		Target: &wire.Target{Address: "mine"}})
	require.NotNil(t, peer.Source)
	require.Equal(t, "q.a", peer.Source.Address)
	require.Equal(t, wire.SenderSettleModeMixed, peer.SndSettleMode)
	require.Equal(t, wire.ReceiverSettleModeFirst, peer.RcvSettleMode)

	b.mu.Lock()
	defer b.mu.Unlock()
	require.Len(t, b.attached, 1)
	a := b.attached[0]
	require.Equal(t, "r1@lr-client", a.name)
	require.Equal(t, wire.RoleSender, a.role, "the broker sends on a client receiver's link")
	require.Equal(t, wire.SenderSettleModeMixed, a.snd)
	require.Equal(t, wire.ReceiverSettleModeFirst, a.rcv)
	require.Equal(t, "q.a", a.src.Address)
	require.Equal(t, wire.TerminusExpiryPolicySessionEnd, a.src.ExpiryPolicy)
	require.Equal(t, []wire.Symbol{"queue"}, a.src.Capabilities)
	require.Nil(t, a.src.DefaultOutcome)
	require.Equal(t, "mine", a.tgt.Address)
	require.Len(t, b.opens, 1)
	o := b.opens[0]
	require.Equal(t, r.ID(), o.ContainerID)
	require.Equal(t, "127.0.0.1", o.Hostname)
	require.Equal(t, uint32(16384), o.MaxFrameSize)
	require.Equal(t, uint16(32767), o.ChannelMax)
	require.Equal(t, uint32(8000), o.IdleTimeOut)
	require.Equal(t, "qpid-dispatch-router", o.Properties["product"])
	require.Equal(t, "1.19.0", o.Properties["version"])
}

// A link route has a direction: with only "in" (client senders) a receiver of the
// same address is the router's own, a sender goes to the broker.
func TestLinkRouteDirection(t *testing.T) {
	t.Parallel()
	b := runRecBroker(t)
	r := lrRouter(t, b.addr, LinkRoute{Prefix: "q", Direction: "in", Connection: "broker"})
	c := lrDial(t, r, "dir")
	peer := c.attach(&wire.Attach{Name: "rcv", Role: wire.RoleReceiver, Source: &wire.Source{Address: "q.x"}, Target: &wire.Target{}})
	require.NotNil(t, peer.Source)
	peer = c.attach(&wire.Attach{Name: "snd", Role: wire.RoleSender, Source: &wire.Source{}, Target: &wire.Target{Address: "q.x"}})
	require.NotNil(t, peer.Target)
	b.mu.Lock()
	defer b.mu.Unlock()
	require.Len(t, b.attached, 1)
	require.Equal(t, "snd@dir", b.attached[0].name)
	info, ok := r.Address("q.x")
	require.True(t, ok)
	require.Equal(t, 1, info.Consumers, "the receiver is the router's")
}

// The best matching link route wins, as in qdrouterd's parse tree: more literal
// segments, then the longer; patterns match segment by segment.
func TestLinkRouteBestMatch(t *testing.T) {
	t.Parallel()
	b := runRecBroker(t)
	routes := append(bothWays("a", "broker"), bothWays("a.b", "nowhere")...)
	routes = append(routes, LinkRoute{Pattern: "z.*.y", Direction: "out", Connection: "broker"})
	r := lrRouter(t, b.addr, routes...)
	c := lrDial(t, r, "match")
	for _, tc := range []struct {
		addr   string
		routed bool // to the broker
		down   bool // refused: no route
	}{
		{"a", true, false}, {"a.x", true, false}, {"a/x", true, false}, {"ab", false, false},
		{"a.b", false, true}, {"a.b.c", false, true}, {"z.k.y", true, false}, {"z.k.k.y", false, false},
	} {
		peer := c.attach(&wire.Attach{Name: "l-" + tc.addr, Role: wire.RoleReceiver, Source: &wire.Source{Address: tc.addr}, Target: &wire.Target{}})
		if tc.down {
			require.Nil(t, peer.Source, tc.addr)
			d := c.detach(t)
			require.Equal(t, wire.ErrCond("qd:no-route-to-dest"), d.Error.Condition, tc.addr)
			continue
		}
		require.NotNil(t, peer.Source, tc.addr)
		b.mu.Lock()
		_, routed := b.links["l-"+tc.addr+"@match"]
		b.mu.Unlock()
		require.Equal(t, tc.routed, routed, tc.addr)
	}
	require.True(t, r.core.linkRouteActive(0))
	require.False(t, r.core.linkRouteActive(2), "the route to a connection that does not exist is inactive")
}

// addExternalPrefix and delExternalPrefix rewrite the address the broker sees, and
// the answer back.
func TestLinkRoutePrefixRewrite(t *testing.T) {
	t.Parallel()
	b := runRecBroker(t)
	r := lrRouter(t, b.addr, LinkRoute{Prefix: "ext", Direction: "out", Connection: "broker",
		DelExternalPrefix: "ext.", AddExternalPrefix: "int."})
	c := lrDial(t, r, "rw")
	peer := c.attach(&wire.Attach{Name: "r", Role: wire.RoleReceiver, Source: &wire.Source{Address: "ext.q"}, Target: &wire.Target{}})
	require.Equal(t, "ext.q", peer.Source.Address)
	b.mu.Lock()
	defer b.mu.Unlock()
	require.Equal(t, "int.q", b.attached[0].src.Address)
}

// Detaches are relayed: the client's, with its closed flag and error (none when it
// gave none); a client's link lost with its connection as qd:routed-link-lost; the
// broker's, with its error.
func TestLinkRouteDetachesRelayed(t *testing.T) {
	t.Parallel()
	b := runRecBroker(t)
	r := lrRouter(t, b.addr, bothWays("q", "broker")...)
	c := lrDial(t, r, "det")
	c.attach(&wire.Attach{Name: "plain", Role: wire.RoleReceiver, Source: &wire.Source{Address: "q.1"}, Target: &wire.Target{}})
	c.attach(&wire.Attach{Name: "witherr", Role: wire.RoleReceiver, Source: &wire.Source{Address: "q.2"}, Target: &wire.Target{}})
	c.attach(&wire.Attach{Name: "lost", Role: wire.RoleSender, Source: &wire.Source{}, Target: &wire.Target{Address: "q.3"}})
	c.attach(&wire.Attach{Name: "bybroker", Role: wire.RoleSender, Source: &wire.Source{}, Target: &wire.Target{Address: "q.4"}})

	require.NoError(t, c.Write(0, &wire.Detach{Handle: 0, Closed: true}))
	require.NoError(t, c.Write(0, &wire.Detach{Handle: 1, Error: &wire.Error{Condition: wire.ErrCondInternalError, Description: "bye"}}))
	b.mu.Lock()
	bl := b.links["bybroker@det"]
	b.mu.Unlock()
	bl.Close(&wire.Error{Condition: wire.ErrCondResourceDeleted, Description: "queue deleted"})
	for {
		f, err := c.Next()
		require.NoError(t, err)
		if d, ok := f.Body.(*wire.Detach); ok && d.Handle == 3 {
			require.True(t, d.Closed)
			require.Equal(t, wire.ErrCondResourceDeleted, d.Error.Condition)
			require.Equal(t, "queue deleted", d.Error.Description)
			break
		}
	}
	c.Close() // the client goes: "lost" is lost
	b.wait(t, "the broker's detaches", func() bool { return len(b.detached) == 4 })
	b.mu.Lock()
	defer b.mu.Unlock()
	got := map[string]recDetach{}
	for _, d := range b.detached {
		got[d.name] = d
	}
	require.True(t, got["plain@det"].byPeer && got["plain@det"].closed)
	require.Equal(t, "detached by the client", got["plain@det"].err.Description, "no error relayed")
	require.True(t, got["witherr@det"].byPeer)
	require.False(t, got["witherr@det"].closed)
	require.Equal(t, "bye", got["witherr@det"].err.Description)
	require.True(t, got["lost@det"].byPeer && got["lost@det"].closed)
	require.Equal(t, wire.ErrCond("qd:routed-link-lost"), got["lost@det"].err.Condition)
}

// A broker's refusal reaches the client as qdrouterd relays it: the answer with
// empty termini, then the broker's detach after it.
func TestLinkRouteBrokerRefusal(t *testing.T) {
	t.Parallel()
	b := runRecBroker(t)
	b.refuse = &wire.Error{Condition: wire.ErrCondUnauthorizedAccess, Description: "no"}
	r := lrRouter(t, b.addr, bothWays("q", "broker")...)
	c := lrDial(t, r, "ref")
	for _, a := range []*wire.Attach{
		{Name: "r", Role: wire.RoleReceiver, Source: &wire.Source{Address: "q.r"}, Target: &wire.Target{}},
		{Name: "s", Role: wire.RoleSender, Source: &wire.Source{}, Target: &wire.Target{Address: "q.s"}},
	} {
		peer := c.attach(a)
		require.NotNil(t, peer.Source, a.Name)
		require.NotNil(t, peer.Target, a.Name)
		d := c.detach(t)
		require.True(t, d.Closed)
		require.Equal(t, wire.ErrCondUnauthorizedAccess, d.Error.Condition)
		require.Equal(t, "no", d.Error.Description)
	}
}

// Without the route container the attach is refused as by qdrouterd: the router's
// own terminus null, the client's other terminus kept (a sender's source only with an
// address), then qd:no-route-to-dest.
func TestLinkRouteNoRoute(t *testing.T) {
	t.Parallel()
	r := RunT(t, &Options{LinkRoutes: bothWays("q", "broker"),
		Connectors: []Connector{{Name: "broker", Host: "127.0.0.1", Port: "1", Role: "route-container"}}})
	c := lrDial(t, r, "none")
	peer := c.attach(&wire.Attach{Name: "r", Role: wire.RoleReceiver, Source: &wire.Source{Address: "q.r"}, Target: &wire.Target{}})
	require.Nil(t, peer.Source)
	require.NotNil(t, peer.Target)
	require.Equal(t, wire.TerminusExpiryPolicySessionEnd, peer.Target.ExpiryPolicy)
	require.Equal(t, &wire.Error{Condition: "qd:no-route-to-dest", Description: "No route to the destination node"}, c.detach(t).Error)
	peer = c.attach(&wire.Attach{Name: "s", Role: wire.RoleSender, Source: &wire.Source{}, Target: &wire.Target{Address: "q.s"}})
	require.Nil(t, peer.Source, "a source without an address is answered null")
	require.Nil(t, peer.Target)
	c.detach(t)
	peer = c.attach(&wire.Attach{Name: "s2", Role: wire.RoleSender, Source: &wire.Source{Address: "src"}, Target: &wire.Target{Address: "q.s"}})
	require.Equal(t, "src", peer.Source.Address)
	require.Nil(t, peer.Target)
	c.detach(t)
	require.False(t, r.core.linkRouteActive(0))
	require.Equal(t, []ConnectorInfo{{Name: "broker", Addr: "127.0.0.1:1", Role: "route-container"}}, r.Connectors())
	err := r.WaitForConnector(lrCtx(t), "other")
	require.ErrorContains(t, err, `no connector named "other"`)
}

// Messages, credit, outcomes and a drain cross the route to the fake broker; a
// receiver that lowers its credit while the broker is sending gets the rest later.
func TestLinkRouteThroughFakeBroker(t *testing.T) {
	t.Parallel()
	fb := fakebroker.RunT(t, nil)
	r := lrRouter(t, fb.Addr(), bothWays("unicast.lr", "broker")...)
	ctx := lrCtx(t)
	conn, err := amqp.Dial(ctx, r.URL(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	sess, err := conn.NewSession(ctx, nil)
	require.NoError(t, err)
	snd, err := sess.NewSender(ctx, "unicast.lr.q", nil)
	require.NoError(t, err)
	for i := range 10 {
		require.NoError(t, snd.Send(ctx, amqp.NewMessage([]byte("m"+strconv.Itoa(i))), nil))
	}
	c := lrDial(t, r, "credit")
	peer := c.attach(&wire.Attach{Name: "r", Role: wire.RoleReceiver, Source: &wire.Source{Address: "unicast.lr.q"}, Target: &wire.Target{}})
	require.Equal(t, "move", string(peer.Source.DistributionMode))
	c.flow(0, 0, 10, false)
	c.flow(0, 0, 2, false)
	got := 0
	for got < 2 {
		tr, _, err := frameclient.Expect[*wire.Transfer](c.Conn)
		require.NoError(t, err)
		require.NoError(t, c.Write(0, &wire.Disposition{Role: wire.RoleReceiver, First: *tr.DeliveryID, Settled: true, State: &wire.Accepted{}}))
		got++
	}
	c.flow(0, uint32(got), 20, true)
	for {
		f, err := c.Next()
		require.NoError(t, err)
		if tr, ok := f.Body.(*wire.Transfer); ok {
			m := new(wire.Message)
			require.NoError(t, m.Unmarshal(f.Payload))
			require.Equal(t, "m"+strconv.Itoa(got), string(m.Data[0]), "in order")
			require.NoError(t, c.Write(0, &wire.Disposition{Role: wire.RoleReceiver, First: *tr.DeliveryID, Settled: true, State: &wire.Accepted{}}))
			got++
			continue
		}
		if fl, ok := f.Body.(*wire.Flow); ok && fl.Drain {
			require.Equal(t, 10, got, "the drain is answered after every message")
			require.Equal(t, uint32(0), *fl.LinkCredit)
			require.Equal(t, uint32(22), *fl.DeliveryCount)
			break
		}
	}
}

// Closing the router while an attach waits for the broker's answer neither hangs
// nor leaves a goroutine behind: the attach is refused with qd:routed-link-lost.
func TestLinkRouteCloseWhileAttachWaits(t *testing.T) {
	b := runRecBroker(t)
	b.hold = make(chan struct{})
	host, port, _ := net.SplitHostPort(b.addr)
	r, err := Run(&Options{LinkRoutes: bothWays("q", "broker"),
		Connectors: []Connector{{Name: "broker", Host: host, Port: port, Role: "route-container"}}})
	require.NoError(t, err)
	require.NoError(t, r.WaitForConnector(lrCtx(t), "broker"))
	c := lrDial(t, r, "held")
	require.NoError(t, c.Write(0, &wire.Attach{Name: "r", Handle: 0, Role: wire.RoleReceiver, Source: &wire.Source{Address: "q.r"}, Target: &wire.Target{}}))
	b.wait(t, "the held attach", func() bool { return len(b.attached) == 1 })
	require.NoError(t, r.Close())
	peer, _, err := frameclient.Expect[*wire.Attach](c.Conn)
	require.NoError(t, err)
	require.Nil(t, peer.Source)
	d := c.detach(t)
	require.Equal(t, wire.ErrCond("qd:routed-link-lost"), d.Error.Condition)
	requireNoConnectorGoroutines(t)
}

// requireNoConnectorGoroutines waits until no goroutine of a connector or of its
// connections is left.
func requireNoConnectorGoroutines(t *testing.T) {
	t.Helper()
	ctx := lrCtx(t)
	for {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		left := strings.Contains(stacks, "fakerouter.(*connector)") || strings.Contains(stacks, "fakerouter.(*brokerConn)")
		if !left {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("connector goroutines left after the router closed:\n%s", stacks)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Many clients at once on routed links while the broker connection is cut: every
// link completes or is lost, and nothing else breaks (run with -race).
func TestLinkRouteConcurrentWithBrokerLoss(t *testing.T) {
	t.Parallel()
	fb := fakebroker.RunT(t, nil)
	r := lrRouter(t, fb.Addr(), bothWays("unicast.lr", "broker")...)
	ctx := lrCtx(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := amqp.Dial(ctx, r.URL(), nil)
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			sess, err := conn.NewSession(ctx, nil)
			if err != nil {
				t.Error(err)
				return
			}
			addr := "unicast.lr.c" + strconv.Itoa(i)
			snd, err := sess.NewSender(ctx, addr, nil)
			if err != nil {
				return // refused while the broker was away
			}
			rcv, err := sess.NewReceiver(ctx, addr, &amqp.ReceiverOptions{Credit: 10})
			if err != nil {
				return
			}
			for j := range 50 {
				if err := snd.Send(ctx, amqp.NewMessage([]byte(strconv.Itoa(j))), nil); err != nil {
					return
				}
				m, err := rcv.Receive(ctx, nil)
				if err != nil {
					return
				}
				if err := rcv.AcceptMessage(ctx, m); err != nil {
					return
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	fb.DropConnections()
	wg.Wait()
	// The router still routes, and link-routes once connected again.
	require.NoError(t, r.WaitForConnector(ctx, "broker"))
	c := lrDial(t, r, "after")
	peer := c.attach(&wire.Attach{Name: "s", Role: wire.RoleSender, Source: &wire.Source{}, Target: &wire.Target{Address: "anycast.plain"}})
	require.NotNil(t, peer.Target)
}
