// Package fakerouter is an in-process AMQP 1.0 router that behaves like qdrouterd 1.19.0
// (Apache Qpid Dispatch Router) as the oslo.messaging AMQP 1.0 deployment guide runs it.
// It speaks the real wire protocol on a loopback port, so any AMQP 1.0 client can use
// it: go-amqp, Qpid Proton, the Python oslo.messaging driver, amqp1kit's own driver.
//
// In a test:
//
//	r := fakerouter.RunT(t, nil)
//	// dial r.URL() with any AMQP 1.0 client
//
// # What it imitates
//
// The model is the real program on the wire, not its documents; the conformance suite
// (package conformance) holds the fake and qdrouterd 1.19.0 to the same cases, and its
// differential mode compares their frames.
//
//   - Open: product qpid-dispatch-router, version 1.19.0 and qd.conn-id in the
//     properties (so oslo drivers in dynamic addressing mode pick the routable syntax),
//     ANONYMOUS-RELAY and qd.streaming-links offered and desired, max-frame-size 16384,
//     idle-time-out 8000, channel-max the lower of 32767 and the client's; sessions
//     with windows of 2147483647; SASL ANONYMOUS (PLAIN with Users).
//   - Routing without storage: a message is given on arrival to a consumer chosen by
//     the address's distribution (closest, balanced, multicast; prefixes as the guide's
//     address table or a qdrouterd.conf say), and the consumer's outcome travels back to
//     the sender (end-to-end acknowledgement). Unsettled multicast copies go unsettled
//     and the sender gets the strongest outcome once all are settled.
//   - Which consumer, as qdrouterd's forwarders choose, whatever the consumers' credit:
//     balanced, the one holding the fewest messages given and not yet settled (the
//     first in attach order on a tie); closest, the local consumers in turn. A
//     message given to a consumer without credit waits for it there (qdrouterd's
//     undelivered list), even when another consumer has credit; it goes back to its
//     sender released (dropped if pre-settled) if that consumer leaves first. A
//     pre-settled message that finds a consumer's undelivered list at the link
//     capacity (250) drops the pre-settled ones on it but the first, counted in the
//     links' and the router's droppedPresettled figures.
//   - Credit: a sender gets the link capacity (250) once its address has a consumer,
//     whatever credit the consumer gave, and each delivery's credit back once the
//     router has settled it (or, pre-settled, as soon as it is routed); none before a consumer
//     exists, multicast included; credit is never taken back. A message that finds no
//     path is released (dropped if pre-settled) and its sender asked to drain. A
//     delivery its sender aborts is dropped (nothing of it is forwarded) and its credit
//     given back at once, in a flow.
//   - Answers as Qpid Proton writes them: every attach answered snd-settle-mode mixed
//     and rcv-settle-mode first whatever was asked, initial-delivery-count 0,
//     max-message-size 0; a receiver's source echoed, outcomes included, without its
//     default-outcome; echo flows unanswered; a drain with no credit unanswered. The
//     max-message-size a receiver announces is not checked: a larger message is
//     delivered to it anyway.
//   - Dynamic sources named amqp:/_topo/0/<router-id>/temp.<id>, dynamic targets
//     amqp:/_$temp.<id>; anonymous relay (null target) routing by the to property;
//     refusals with qdrouterd's conditions.
//   - Backpressure: the router stops writing to a consumer whose connection has
//     Options.ConnOutputLimit queued; what it is given meanwhile waits on its
//     undelivered list, so unsettled senders run out of credit and pre-settled
//     messages are dropped at the link capacity, as above: the router's memory stays
//     bounded and the consumer keeps its connection.
//   - Link routes, as in the guide's mixed deployment with a broker behind the router:
//     Connectors (qdrouterd's connector sections, reconnecting with its delays) reach
//     a route container, and an attach to an address of LinkRoutes is passed to it
//     link by link: the broker's attach answer, credit, transfers, dispositions and
//     detach are relayed as qdrouterd relays them (linkroute.go); without the route
//     container connected, qd:no-route-to-dest; when it is lost, qd:routed-link-lost.
//     A delivery the client aborts goes no further, and the client gets the route
//     container's credit back at once.
//   - Management: qdrouterd's AMQP management protocol at $management (management.go),
//     as both of its agents answer it (the core's for router, connection, router.link,
//     router.address and the configuration types; the Python one for the management
//     node's GET-* operations, listener, policy, short type names), so that qdstat and
//     qdmanage work against the fake and show its own figures. The same requests get
//     byte-for-byte the same responses (statuses, descriptions, encodings), checked
//     against qdrouterd 1.19.0.
//
// MulticastDropsWithoutConsumer gives the older behaviour the deployment guide
// describes (multicast senders always have credit; messages nobody consumes are
// dropped).
//
// # Where it knowingly differs
//
//   - A message larger than MaxMessageSize (64 MiB unless set) closes its link with
//     amqp:link:message-size-exceeded; qdrouterd streams messages of any size. The
//     limit is announced only when set, as qdrouterd's policy limit is.
//   - Frame batching: where qdrouterd settles several deliveries in one disposition
//     range, or gives credit back in one flow, the fake may send one frame each. The
//     state the client ends in is the same.
//   - Link-routed links: the delivery tags a client receiver sees are the router's own
//     (qdrouterd passes the broker's on); a client's detach is answered at once
//     (qdrouterd answers once the broker has, after the broker's last dispositions);
//     a client's attach, or its drain, holds that client connection's other frames
//     until the broker answers (qdrouterd holds only the link).
//   - Management: a request qdrouterd never answers (no application-properties, a
//     body that does not decode, READ of a router.link, UPDATE, CREATE or DELETE its
//     core agent ignores) gets an error status (400 or 501). CREATE, UPDATE and
//     DELETE of configuration (address, linkRoute, listener...) are refused with 501:
//     the fake's configuration is fixed. Not kept: the Python agent's log, logStats
//     and allocator entities (GET-LOG is empty), link-routed links in router.link,
//     the connectors' connections in connection, delay, stuck and settle-rate
//     counters (0). A mesh's routers each show themselves standalone (GET-MGMT-NODES
//     empty, no router.node). workerThreads is GOMAXPROCS; memoryUsage is the Go
//     runtime's. Management requests are not counted in Stats (their responses are
//     counted as deliveries to the reply address).
package fakerouter

import (
	"context"
	"fmt"
	"sort"

	"github.com/amqp1kit/amqp1kit/internal/engine"
	"github.com/amqp1kit/amqp1kit/internal/fakeutil"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// Router is a fake qdrouterd. Its methods are safe for concurrent use.
type Router struct {
	opts Options
	core *core
	srv  *engine.Server
	ls   *fakeutil.Server // the listener and its lifecycle
}

// New returns a router that is not listening yet: call Start. It reports bad options
// (an unreadable or malformed ConfigFile, an unknown distribution).
func New(opts *Options) (*Router, error) {
	o, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	c, err := newCore(&o)
	if err != nil {
		return nil, err
	}
	return newRouter(o, c), nil
}

func newRouter(o Options, c *core) *Router {
	r := &Router{opts: o, core: c}
	eo := &engine.Options{
		ContainerID: o.ID,
		Properties: wire.Fields{
			"product": "qpid-dispatch-router",
			"version": o.Version,
		},
		// qd.conn-id numbers the router's connections from 1, as an int.
		ConnProperties:      func(c *engine.Conn) wire.Fields { return wire.Fields{"qd.conn-id": int32(c.ID())} },
		OfferedCapabilities: []wire.Symbol{"ANONYMOUS-RELAY", "qd.streaming-links"},
		DesiredCapabilities: []wire.Symbol{"ANONYMOUS-RELAY", "qd.streaming-links"},
		MaxFrameSize:        o.MaxFrameSize,
		ChannelMax:          32767,
		IdleTimeout:         o.IdleTimeout,
		MaxMessageSize:      o.MaxMessageSize,
		OutputHighWater:     o.ConnOutputLimit,
		// Announced only when set, as a policy's limit is; unset, the attach says 0
		// (no limit) as the real one's does, and 64 MiB still applies.
		AnnounceMaxMessageSize: o.MaxMessageSize > 0,
		SessionWindow:          1<<31 - 1, // Proton's: link credit alone bounds transfers
		IgnoreEcho:             true,      // Proton leaves echo unanswered
		OmitAvailable:          true,      // and sends no available
		TLS:                    o.TLS,
		RequireTLS:             o.RequireTLS,
		Users:                  o.Users,
		DenyAnonymous:          o.DenyAnonymous,
		AllowExternal:          o.AllowExternal,
		Logger:                 o.Logger.With("router", o.ID),
	}
	if o.Trace != nil {
		eo.Trace = func(ev engine.TraceEvent) { o.Trace(newFrame(ev)) }
	}
	r.srv = engine.NewServer(handler{r}, eo)
	r.ls = fakeutil.NewServer("fakerouter", r.srv)
	return r
}

// Run returns a router listening on opts.Addr (a free loopback port by default).
func Run(opts *Options) (*Router, error) {
	return fakeutil.Run(func() (*Router, error) { return New(opts) })
}

// Tester is the part of *testing.T that RunT uses, so it works with *testing.B and
// other frameworks too.
type Tester = fakeutil.Tester

// RunT starts a router for a test and closes it when the test ends; a start failure
// fails the test.
func RunT(t Tester, opts *Options) *Router {
	t.Helper()
	return fakeutil.RunT(t, "fakerouter", func() (*Router, error) { return Run(opts) })
}

// Start listens on the configured address and serves in the background. The address
// is bound when Start returns.
func (r *Router) Start() error {
	if err := r.ls.Start(r.opts.Addr, nil); err != nil {
		return err
	}
	r.opts.Logger.Info("fake router listening", "id", r.opts.ID, "addr", r.ls.Addr())
	r.core.startConnectors(r) // connector.go
	return nil
}

// Close closes every client connection (close with amqp:connection:forced) and stops
// listening. It does not wait for clients: connections are closed actively.
func (r *Router) Close() error {
	if r.ls.Running() {
		r.core.stopConnectors(r) // connector.go: first, so no attach waits on a route container
	}
	return r.ls.Close(nil)
}

// Restart is what a client sees when the real router restarts: the listener goes and
// every client connection is cut (no close frame, as when the process dies); once
// they are gone the router listens on the same address again. The address table and
// counts are kept. It returns an error when the router is not running or the address
// cannot be had again.
func (r *Router) Restart() error { return r.ls.Restart(nil) }

// Addr returns the host:port the router listens on ("" before Start).
func (r *Router) Addr() string { return r.ls.Addr() }

// URL returns amqp://host:port for clients.
func (r *Router) URL() string { return "amqp://" + r.Addr() }

// ID returns the router's id (its container-id).
func (r *Router) ID() string { return r.opts.ID }

// handler adapts a Router to the engine.
type handler struct{ r *Router }

func (h handler) Opened(c *engine.Conn) error { h.r.core.agent.opened(c); return nil }

func (h handler) Closed(c *engine.Conn, _ error) { h.r.core.connClosed(c) }

// Writable hears that a connection that read too slowly has drained.
func (h handler) Writable(c *engine.Conn) { h.r.core.writable(c) }

func (h handler) Attach(l *engine.Link) error { return h.r.core.attach(h.r, l) }

func (h handler) LinkDetached(l *engine.Link, err *wire.Error) { h.r.core.linkDetached(l, err) }

func (h handler) Delivery(l *engine.Link, d *engine.Delivery) { h.r.core.delivery(l, d) }

func (h handler) Credit(l *engine.Link) { h.r.core.credit(l) }

// Aborted hears that a sender aborted a delivery: nothing of it is forwarded.
func (h handler) Aborted(l *engine.Link) { h.r.core.aborted(l) }

func (h handler) Disposition(l *engine.Link, d *engine.Delivery, state wire.DeliveryState, settled bool) {
	h.r.core.disposition(l, d, state, settled)
}

// Counts are the deliveries of an address (or of the whole router).
type Counts struct {
	// Ingress counts messages received from senders.
	Ingress uint64
	// Delivered counts messages (and multicast copies) sent to consumers.
	Delivered uint64
	// Accepted, Released, Modified and Rejected count the outcomes given back to
	// senders.
	Accepted, Released, Modified, Rejected uint64
	// Dropped counts messages (or multicast copies) no consumer got, whose sender had
	// pre-settled them or sent them to a multicast address.
	Dropped uint64
}

// AddressInfo describes one address the router knows.
type AddressInfo struct {
	Address      string
	Distribution Distribution
	// Dynamic is true for a router-named reply address.
	Dynamic bool
	// Consumers and Senders count the attached links.
	Consumers, Senders int
	// Waiting counts messages given to the address's consumers and not sent yet: a
	// consumer without credit, or one that reads too slowly, holds them (qdrouterd's
	// undelivered deliveries of its links).
	Waiting int
	Counts  Counts
}

// Addresses returns the addresses that have consumers or senders, sorted by name.
func (r *Router) Addresses() []AddressInfo {
	c := r.core
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]AddressInfo, 0, len(c.nodes))
	for _, n := range c.nodes {
		out = append(out, n.info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out
}

// Address returns what the router knows of one address; ok is false when it has no
// consumer or sender.
func (r *Router) Address(addr string) (AddressInfo, bool) {
	c := r.core
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[addr]
	if n == nil {
		dist, _ := c.table.lookup(addr)
		return AddressInfo{Address: addr, Distribution: dist}, false
	}
	return n.info(), true
}

func (n *node) info() AddressInfo {
	waiting := 0
	for _, co := range n.consumers {
		waiting += len(co.undelivered)
	}
	return AddressInfo{
		Address: n.name, Distribution: n.dist, Dynamic: n.dynamic,
		Consumers: len(n.consumers), Senders: len(n.producers), Waiting: waiting,
		Counts: n.counts,
	}
}

// Distribution returns the distribution the address table gives addr.
func (r *Router) Distribution(addr string) Distribution {
	d, _ := r.core.table.lookup(addr)
	return d
}

// Stats returns the counts over all addresses since the router started.
func (r *Router) Stats() Counts {
	c := r.core
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.totals
}

// LinkInfo describes one attached link, from the client's point of view.
type LinkInfo = fakeutil.LinkInfo

// Links returns the links attached to this router, sorted by connection and name.
func (r *Router) Links() []LinkInfo { return fakeutil.Links(r.srv.Conns()) }

// Connections returns the number of client connections.
func (r *Router) Connections() int { return len(r.srv.Conns()) }

// ConnInfo describes one client connection.
type ConnInfo = fakeutil.ConnInfo

// Conns describes the client connections, sorted by id.
func (r *Router) Conns() []ConnInfo { return fakeutil.Conns(r.srv.Conns()) }

// WaitForConsumers blocks until addr has at least n consumers across the router (or
// the mesh), like qdrouterd's system tests wait_address, or ctx ends.
func (r *Router) WaitForConsumers(ctx context.Context, addr string, n int) error {
	return r.waitFor(ctx, func(c *core) bool {
		nd := c.nodes[addr]
		return nd != nil && len(nd.consumers) >= n
	}, fmt.Sprintf("%d consumers on %q", n, addr))
}

// WaitForPrefix blocks until at least n consumers are attached to addresses that
// start with prefix, or ctx ends. It suits clients whose exact addresses are not
// known in advance (an oslo.messaging server's three links, for example).
func (r *Router) WaitForPrefix(ctx context.Context, prefix string, n int) error {
	return r.waitFor(ctx, func(c *core) bool {
		total := 0
		for name, nd := range c.nodes {
			if len(name) >= len(prefix) && name[:len(prefix)] == prefix {
				total += len(nd.consumers)
			}
		}
		return total >= n
	}, fmt.Sprintf("%d consumers under %q", n, prefix))
}

func (r *Router) waitFor(ctx context.Context, cond func(*core) bool, what string) error {
	c := r.core
	for {
		c.mu.Lock()
		ok := cond(c)
		ch := c.changed
		c.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("fakerouter: waiting for %s: %w", what, ctx.Err())
		}
	}
}

// CloseConnections closes every client connection with amqp:connection:forced; the
// router keeps listening, so clients may reconnect.
func (r *Router) CloseConnections() { r.srv.CloseConns("closed by fakerouter.CloseConnections") }

// DropConnections cuts every client connection without an AMQP close, as a crash or a
// network failure would.
func (r *Router) DropConnections() {
	for _, c := range r.srv.Conns() {
		c.Drop()
	}
}

// StopCredit stops granting credit to senders until ResumeCredit: each keeps what it
// was granted (qdrouterd never takes credit back) and, once that is used, blocks as if
// no consumer could take its messages.
func (r *Router) StopCredit() { r.core.setCreditStopped(true) }

// ResumeCredit undoes StopCredit.
func (r *Router) ResumeCredit() { r.core.setCreditStopped(false) }

// HoldSettlements keeps consumers' outcomes from reaching senders until
// ReleaseSettlements: senders wait as if consumers were slow to acknowledge.
func (r *Router) HoldSettlements() {
	c := r.core
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holdSettle = true
}

// ReleaseSettlements sends the held outcomes and stops holding.
func (r *Router) ReleaseSettlements() {
	c := r.core
	c.mu.Lock()
	defer c.mu.Unlock()
	held := c.held
	c.held, c.holdSettle = nil, false
	for _, h := range held {
		c.settleInLocked(h.in, h.state, h.sender)
	}
}

// Outcome names a delivery outcome for SetOutcome.
type Outcome string

// Outcomes a sender may be given.
const (
	OutcomeNone     Outcome = ""
	OutcomeAccepted Outcome = "accepted"
	OutcomeReleased Outcome = "released"
	OutcomeModified Outcome = "modified" // with delivery-failed
	OutcomeRejected Outcome = "rejected"
)

// SetOutcome makes every sender get outcome o instead of the consumer's, until called
// with OutcomeNone: a fault to see how a client handles refusals. Messages still go to
// consumers.
func (r *Router) SetOutcome(o Outcome) error {
	var st wire.DeliveryState
	switch o {
	case OutcomeNone:
	case OutcomeAccepted:
		st = &wire.Accepted{}
	case OutcomeReleased:
		st = &wire.Released{}
	case OutcomeModified:
		st = &wire.Modified{DeliveryFailed: true}
	case OutcomeRejected:
		st = &wire.Rejected{Error: &wire.Error{Condition: wire.ErrCondNotAllowed, Description: "rejected by fakerouter.SetOutcome"}}
	default:
		return fmt.Errorf("fakerouter: unknown outcome %q", o)
	}
	c := r.core
	c.mu.Lock()
	defer c.mu.Unlock()
	c.override = st
	return nil
}
