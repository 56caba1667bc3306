package fakerouter

import (
	"crypto/rand"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/amqp1kit/amqp1kit/internal/engine"
	"github.com/amqp1kit/amqp1kit/internal/fakeutil"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// core is the routing state shared by the routers of one mesh (a lone router has a
// core of its own). One mutex guards it; engine calls made under it only take
// connection locks, and the engine never calls back while holding one.
type core struct {
	mu     sync.Mutex
	table  *addressTable
	routes []compiledRoute
	nodes  map[string]*node
	// anonymous holds the anonymous-relay senders (null target), which belong to no
	// node: StopCredit must reach them too.
	anonymous map[*producer]struct{}
	totals    Counts
	changed   chan struct{} // closed and replaced whenever consumers or senders change

	multicastWaits bool
	capacity       uint32
	// stalled lists, per connection that read too slowly (engine.Conn.Writable said
	// no), the nodes with messages held back for it: Writable pumps them again.
	stalled fakeutil.Stalled[*node]

	// agent answers management requests and keeps qdrouterd's counts
	// (management.go).
	agent *agent

	creditStopped bool
	holdSettle    bool
	held          []heldOutcome
	override      wire.DeliveryState

	// lr holds the connectors and link-routed links (linkroute.go, connector.go).
	lr linkRoutes
}

type compiledRoute struct {
	route    LinkRoute
	segments []string
}

type heldOutcome struct {
	in     *engine.Delivery
	state  wire.DeliveryState
	sender *producer
}

// node is one address with its consumers (links the router sends on) and senders.
type node struct {
	name      string
	dist      Distribution
	dynamic   bool
	consumers []*consumer
	producers []*producer
	counts    Counts
	mgmt      nodeMgmt // management.go
}

type consumer struct {
	link *engine.Link
	r    *Router
	node *node
	// undelivered are the messages given to this consumer and not yet sent: it has
	// no credit, or its connection reads too slowly. As in qdrouterd, a message is
	// given to a consumer when it arrives, whatever the consumer's credit, and waits
	// there (qdrouterd's undelivered list of the outgoing link).
	undelivered []*transit
	outstanding int       // unsettled deliveries sent on the link
	stats       linkStats // management.go
}

type producer struct {
	link *engine.Link
	r    *Router
	node *node // nil on an anonymous-relay link
	// inFlight counts the sender's deliveries the router still holds: unsettled ones
	// until it settles them, pre-settled ones until they are given to their
	// consumers (or dropped), which is at once. Its credit is the link capacity less
	// these, so unsettled messages for a consumer that does not settle or read hold
	// their senders back, as in qdrouterd; pre-settled ones never do.
	inFlight uint32
	// granted is set once the sender had credit: from then on settlements give it
	// back, path or not, as qdrouterd does.
	granted bool
	// draining is set when a message of the sender found no path and the router asked
	// it to drain; a consumer's arrival then tops its credit up again.
	draining bool
	stats    linkStats // management.go
}

// transit is a message on its way through the router.
type transit struct {
	in      *engine.Delivery // the sender's delivery; settled back end-to-end
	payload []byte
	node    *node
	from    *Router
	sender  *producer
	settled bool // the sender sent it pre-settled
	done    bool // the sender has its outcome (or, pre-settled, its credit back)
	// copies is set on the unsettled copies of a multicast message: their outcomes
	// make the sender's.
	copies *copies
}

// copies are the unsettled copies of one multicast message, one a consumer: qdrouterd
// settles the sender's delivery once every copy is settled, with the strongest outcome
// any consumer gave: rejected, then accepted, then modified, then released.
type copies struct {
	of      *transit // the sender's message
	pending int
	outcome wire.DeliveryState
}

// add folds one copy's outcome in and reports whether it was the last.
func (m *copies) add(state wire.DeliveryState) bool {
	if outcomeRank(state) > outcomeRank(m.outcome) {
		m.outcome = state
	}
	m.pending--
	return m.pending == 0
}

func outcomeRank(s wire.DeliveryState) int {
	switch s.(type) {
	case *wire.Rejected:
		return 4
	case *wire.Accepted:
		return 3
	case *wire.Modified:
		return 2
	case *wire.Released:
		return 1
	}
	return 0
}

func newCore(o *Options) (*core, error) {
	t, err := newAddressTable(o.Addresses, o.DefaultDistribution)
	if err != nil {
		return nil, fmt.Errorf("fakerouter: %w", err)
	}
	c := &core{
		table:          t,
		nodes:          map[string]*node{},
		anonymous:      map[*producer]struct{}{},
		changed:        make(chan struct{}),
		multicastWaits: !o.MulticastDropsWithoutConsumer,
		capacity:       o.LinkCapacity,
	}
	for _, lr := range o.LinkRoutes {
		segs := splitSegments(lr.Pattern)
		if lr.Prefix != "" {
			segs = append(splitSegments(lr.Prefix), "#")
		}
		c.routes = append(c.routes, compiledRoute{route: lr, segments: segs})
	}
	c.agent = newAgent(c)
	return c, nil
}

// setCreditStopped starts or ends the StopCredit fault and recomputes every sender's
// credit.
func (c *core) setCreditStopped(stopped bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.creditStopped = stopped
	for _, n := range c.nodes {
		c.refreshCreditLocked(n)
	}
	for p := range c.anonymous {
		c.topUpLocked(p)
	}
}

// notifyLocked wakes waiters on the topology.
func (c *core) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *core) nodeLocked(addr string) *node {
	if n := c.agent.node(addr); n != nil {
		return n // $management and the router's other own addresses
	}
	n := c.nodes[addr]
	if n == nil {
		dist, _ := c.table.lookup(addr)
		n = &node{name: addr, dist: dist}
		c.agent.track(n)
		c.nodes[addr] = n
	}
	return n
}

func (c *core) gcLocked(n *node) {
	if len(n.consumers) == 0 && len(n.producers) == 0 {
		if c.nodes[n.name] == n {
			delete(c.nodes, n.name)
		}
	}
}

// randomSuffix names a dynamic node, as qdrouterd does: 15 letters and digits.
func randomSuffix() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	var b [15]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:])
}

func notFound(format string, args ...any) *wire.Error {
	return &wire.Error{Condition: wire.ErrCondNotFound, Description: fmt.Sprintf(format, args...)}
}

// attachNodeLocked returns the node a link attaches to, refusing unavailable
// addresses. A dynamic node (named by the router for a dynamic source) is closest.
func (c *core) attachNodeLocked(addr string, dynamic bool) (*node, error) {
	n := c.nodeLocked(addr)
	if dynamic {
		n.dynamic, n.dist = true, Closest
	}
	if n.dist == Unavailable {
		c.gcLocked(n)
		return nil, notFound("address %q is unavailable", addr)
	}
	return n, nil
}

// attach decides on a link a client attached through router r.
func (c *core) attach(r *Router, l *engine.Link) error {
	// qdrouterd answers every attach with snd-settle-mode mixed and rcv-settle-mode
	// first, whatever was asked: a client that insists on second (or on a settled
	// link) refuses the link, as it would with qdrouterd.
	l.SetSettleModes(wire.SenderSettleModeMixed, wire.ReceiverSettleModeFirst)
	if routed, err := c.linkRouteAttach(l); routed { // linkroute.go
		return err
	}
	if l.Role() == wire.RoleSender { // the client receives
		src := l.Source()
		if src != nil && src.DefaultOutcome != nil {
			// qdrouterd echoes a receiver's source, outcomes included, but leaves
			// default-outcome out.
			answer := *src
			answer.DefaultOutcome = nil
			l.SetSource(&answer)
			src = &answer
		}
		if src != nil && src.Dynamic {
			l.SetSourceAddress(fmt.Sprintf("amqp:/_topo/0/%s/temp.%s", r.opts.ID, randomSuffix()))
		}
		addr := l.Address()
		if addr == "" {
			return &wire.Error{Condition: "qd:no-route-to-dest", Description: "No route to the destination node"}
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		dynamic := src != nil && src.Dynamic
		n, err := c.attachNodeLocked(addr, dynamic)
		if err != nil {
			return err
		}
		co := &consumer{link: l, r: r, node: n, stats: c.agent.newLink()}
		l.Context = co
		n.consumers = append(n.consumers, co)
		c.notifyLocked()
		c.refreshCreditLocked(n) // a path: the senders get credit
		return nil
	}
	// The client sends. A dynamic target is a node the router names.
	if tgt := l.Target(); tgt != nil && tgt.Dynamic {
		l.SetTargetAddress("amqp:/_$temp." + randomSuffix())
	}
	addr := l.Address()
	c.mu.Lock()
	defer c.mu.Unlock()
	if addr == "" { // anonymous relay: route each message by its to property
		p := &producer{link: l, r: r, stats: c.agent.newLink()}
		l.Context = p
		c.anonymous[p] = struct{}{}
		c.topUpLocked(p)
		return nil
	}
	n, err := c.attachNodeLocked(addr, false)
	if err != nil {
		return err
	}
	p := &producer{link: l, r: r, node: n, stats: c.agent.newLink()}
	l.Context = p
	n.producers = append(n.producers, p)
	c.notifyLocked()
	c.refreshCreditLocked(n)
	return nil
}

// hasPathLocked reports whether the senders of n get credit: qdrouterd grants it
// while the address has a consumer, whatever credit the consumer gave (messages wait
// in the router for it), and never takes it back.
func (c *core) hasPathLocked(n *node) bool {
	if n.mgmt.inProcess > 0 { // the management agent takes every message
		return true
	}
	if n.dist == Multicast && !c.multicastWaits {
		return true
	}
	return len(n.consumers) > 0
}

// refreshCreditLocked tops up the senders of n.
func (c *core) refreshCreditLocked(n *node) {
	for _, p := range n.producers {
		c.topUpLocked(p)
	}
}

// topUpLocked gives a sender back the credit its settled deliveries used: up to the
// link capacity less its deliveries in flight. A sender gets its first credit once its
// address has a path (a consumer), and from then on whatever it settles, unless
// StopCredit holds all credit. Credit is never taken back.
func (c *core) topUpLocked(p *producer) {
	if c.creditStopped {
		return
	}
	path := p.node == nil || c.hasPathLocked(p.node)
	if !path && (!p.granted || p.draining) {
		return // no first credit without a path; none while asked to drain
	}
	want := c.capacity - min(p.inFlight, c.capacity)
	if p.link.Credit() >= want && !(path && p.draining) {
		return
	}
	if path {
		p.draining = false
	}
	p.granted = true
	p.stats.granted = want // management.go
	_ = p.link.SetCredit(want)
}

// credit is called when a client changed the credit of a link the router sends on.
func (c *core) credit(l *engine.Link) {
	if relayCredit(l) { // a link-routed link (linkroute.go)
		return
	}
	co, ok := l.Context.(*consumer)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sendUndeliveredLocked(co)
}

// pumpLocked sends the consumers of n what waits for them, as far as their credit
// goes.
func (c *core) pumpLocked(n *node) {
	for _, co := range n.consumers {
		c.sendUndeliveredLocked(co)
	}
}

// pickLocked chooses the consumer of an anycast message as qdrouterd 1.19's
// forwarders do, whatever the consumers' credit: nil only when there is none.
//
// Balanced (qdr_forward_balanced_CT): the consumer with the fewest messages given
// and not yet settled (undelivered and unsettled), among those with fewer than the
// link capacity if any, the first in attach order on a tie; a consumer on another
// router counts one more (the hop's cost) and is looked at only when no local one
// has nothing outstanding.
//
// Closest (qdr_forward_closest_CT): the consumers of the sender's router take turns
// in attach order (the first is chosen, then moved last); other routers' only when
// it has none.
func (c *core) pickLocked(n *node, from *Router) *consumer {
	if len(n.consumers) == 0 {
		return nil
	}
	if n.dist == Balanced {
		return c.balancedLocked(n, from)
	}
	pick := max(slices.IndexFunc(n.consumers, func(co *consumer) bool { return co.r == from }), 0)
	co := n.consumers[pick]
	n.consumers = append(slices.Delete(n.consumers, pick, pick+1), co)
	return co
}

// balancedLocked is pickLocked for a balanced address.
func (c *core) balancedLocked(n *node, from *Router) *consumer {
	capacity := int(c.capacity)
	var eligible, ineligible *consumer
	eligibleLoad, ineligibleLoad := math.MaxInt, math.MaxInt
	consider := func(co *consumer, load int) {
		switch {
		case co.load() < capacity && load < eligibleLoad:
			eligible, eligibleLoad = co, load
		case co.load() >= capacity && load < ineligibleLoad:
			ineligible, ineligibleLoad = co, load
		}
	}
	for _, co := range n.consumers {
		if co.r == from {
			consider(co, co.load())
			if eligibleLoad == 0 {
				return eligible
			}
		}
	}
	for _, co := range n.consumers {
		if co.r != from {
			consider(co, co.load()+1)
		}
	}
	if eligible != nil {
		return eligible
	}
	return ineligible
}

// load is what qdrouterd weighs a consumer by: the messages given to it and not yet
// sent, and those sent and not yet settled.
func (co *consumer) load() int { return len(co.undelivered) + co.outstanding }

// delivery routes a message a client sent on link l.
func (c *core) delivery(l *engine.Link, d *engine.Delivery) {
	if relayDelivery(l, d) { // a link-routed link (linkroute.go)
		return
	}
	p, ok := l.Context.(*producer)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p.inFlight++
	c.agent.received(p, d)
	// Pre-settled deliveries give their credit back once given to their consumers
	// (doneLocked); unsettled ones once the router settles them (settleSenderLocked).
	n := p.node
	if n == nil { // anonymous relay
		_, props, err := wire.ScanMessage(d.Payload)
		to := ""
		if err == nil && props != nil {
			to = props.To
		}
		if to == "" {
			c.totals.Rejected++
			c.settleAnonymousLocked(p, d, &wire.Rejected{Error: &wire.Error{Condition: wire.ErrCondPreconditionFailed,
				Description: "Routing failure: no address present"}})
			return
		}
		dist, _ := c.table.lookup(to)
		if existing := c.nodes[to]; existing != nil {
			dist = existing.dist
		}
		if dist == Unavailable {
			c.totals.Rejected++
			c.settleAnonymousLocked(p, d, &wire.Rejected{Error: notFound("address %q is unavailable", to)})
			return
		}
		n = c.nodeLocked(to)
		defer c.gcLocked(n)
	}
	if n.mgmt.inProcess > 0 {
		c.agent.request(p, d, n) // a management request (management.go)
		return
	}
	n.counts.Ingress++
	c.totals.Ingress++
	c.routeLocked(&transit{in: d, payload: d.Payload, node: n, from: p.r, sender: p, settled: d.Settled})
}

// aborted is called when a client aborted a delivery on link l: what had arrived of it
// was dropped by the engine, and nothing of it was forwarded. The delivery counted
// against the sender's credit, and qdrouterd gives that credit back at once (a flow
// with the delivery-count advanced and the credit topped up to the link capacity).
// On a link-routed link, see relayAborted.
func (c *core) aborted(l *engine.Link) {
	if relayAborted(l) { // a link-routed link (linkroute.go)
		return
	}
	p, ok := l.Context.(*producer)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.topUpLocked(p)
}

// routeLocked gives t to its node's consumers by the node's distribution, or back to
// its sender when there is no consumer.
func (c *core) routeLocked(t *transit) {
	n := t.node
	if n.dist == Multicast {
		c.multicastLocked(t)
		return
	}
	co := c.pickLocked(n, t.from)
	if co == nil {
		c.noPathLocked(t)
		return
	}
	c.giveLocked(t, co)
	c.doneLocked(t)
}

// giveLocked gives t to consumer co: it is sent at once if co has credit and its
// connection reads, and otherwise waits on co's undelivered list. As qdrouterd's
// qdr_forward_deliver_CT, a pre-settled message that finds that list at the link
// capacity or beyond first drops every pre-settled message on it but the first.
func (c *core) giveLocked(t *transit, co *consumer) {
	c.agent.given(co, t)
	if len(co.undelivered) == 0 && co.link.Credit() > 0 && c.writableLocked(co) && c.sendLocked(t, co) {
		return // the common case: nothing waits, and it goes at once
	}
	if t.settled && len(co.undelivered) >= int(c.capacity) {
		kept := co.undelivered[:1]
		for _, u := range co.undelivered[1:] {
			if !u.settled {
				kept = append(kept, u)
				continue
			}
			u.node.counts.Dropped++
			c.totals.Dropped++
			c.agent.droppedUndelivered(co)
		}
		clear(co.undelivered[len(kept):])
		co.undelivered = kept
	}
	co.undelivered = append(co.undelivered, t)
	c.sendUndeliveredLocked(co)
}

// sendUndeliveredLocked sends co what waits for it, in order, as far as its credit
// goes and while its connection reads.
func (c *core) sendUndeliveredLocked(co *consumer) {
	for len(co.undelivered) > 0 && co.link.Credit() > 0 && c.writableLocked(co) {
		if !c.sendLocked(co.undelivered[0], co) {
			return
		}
		co.undelivered[0] = nil
		if len(co.undelivered) == 1 {
			co.undelivered = co.undelivered[:0] // keeps the array for the next
		} else {
			co.undelivered = co.undelivered[1:]
		}
	}
}

// settleAnonymousLocked settles a delivery the router refuses before routing it.
func (c *core) settleAnonymousLocked(p *producer, d *engine.Delivery, state wire.DeliveryState) {
	c.agent.outcome(p, d.Settled, state)
	p.inFlight--
	c.topUpLocked(p)
	if !d.Settled {
		d.Settle(state)
	}
}

// doneLocked gives a pre-settled message's sender its credit back: the message was
// given to its consumers or dropped.
func (c *core) doneLocked(t *transit) {
	if !t.settled || t.done {
		return
	}
	t.done = true
	if p := t.sender; p != nil {
		p.inFlight--
		c.topUpLocked(p)
	}
}

// noPathLocked gives a message no consumer can take back to its sender: released when
// unsettled, dropped when pre-settled (qdrouterd's undeliverable handling).
//
// A message that arrives to find no consumer also makes qdrouterd ask its sender to
// drain: a flow with the credit it has and drain set (the sender, if it honours drain,
// spends its credit and waits for more, which a consumer's arrival brings).
func (c *core) noPathLocked(t *transit) {
	if p := t.sender; p != nil && p.node != nil && !p.draining {
		p.draining = true
		_ = p.link.Drain()
	}
	c.giveBackLocked(t)
}

// giveBackLocked releases an unsettled message to its sender and drops a pre-settled one.
func (c *core) giveBackLocked(t *transit) {
	if t.settled {
		t.node.counts.Dropped++
		c.totals.Dropped++
		c.agent.dropped(t)
		c.doneLocked(t)
		return
	}
	c.settleSenderLocked(t, &wire.Released{})
}

// multicastLocked sends a copy of t to every consumer of its address. Pre-settled, the
// copies go pre-settled; unsettled, each copy goes unsettled and the sender's delivery
// waits for all of them (copies.add).
func (c *core) multicastLocked(t *transit) {
	n := t.node
	if len(n.consumers) == 0 {
		// No consumer: the older qdrouterd the guide describes drops the message (1.19
		// gives such a sender no credit, so a message gets here only when the last
		// consumer left after the credit was granted).
		n.counts.Dropped++
		c.totals.Dropped++
		if !t.settled {
			c.settleSenderLocked(t, &wire.Released{})
		}
		return
	}
	var group *copies
	if !t.settled {
		group = &copies{of: t, pending: len(n.consumers)}
	}
	for _, co := range n.consumers {
		c.giveLocked(&transit{payload: t.payload, node: n, from: t.from, settled: t.settled, copies: group}, co)
	}
	c.doneLocked(t)
}

// writableLocked reports whether co's connection takes more messages now: one that
// reads slowly keeps its messages on its undelivered list until its output drains
// (Writable), as qdrouterd stops writing to a connection whose output is full.
func (c *core) writableLocked(co *consumer) bool {
	return c.stalled.Writable(co.link.Conn(), co.node)
}

// connClosed forgets a connection.
func (c *core) connClosed(conn *engine.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stalled.Forget(conn)
	c.agent.closed(conn)
}

// writable is called when a connection that read too slowly has drained: the
// messages held back for it go now.
func (c *core) writable(conn *engine.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.stalled.Take(conn) {
		c.pumpLocked(n)
	}
}

// copyLostLocked accounts for a multicast copy that will never reach its consumer.
func (c *core) copyLostLocked(cp *transit) {
	cp.node.counts.Dropped++
	c.totals.Dropped++
	c.copySettledLocked(cp, &wire.Released{})
}

// copySettledLocked folds the outcome of one unsettled copy into its message's: the
// sender's delivery is settled when it was the last.
func (c *core) copySettledLocked(cp *transit, state wire.DeliveryState) {
	if cp.copies == nil || cp.done {
		return
	}
	cp.done = true
	if cp.copies.add(state) {
		c.settleSenderLocked(cp.copies.of, cp.copies.outcome)
	}
}

// sendLocked sends t to consumer co, and reports whether it went.
func (c *core) sendLocked(t *transit, co *consumer) bool {
	if _, err := co.link.Send(t.payload, t.settled, t); err != nil {
		return false // no credit after all, or the link is going: it waits
	}
	c.agent.sent(co, t)
	if !t.settled {
		co.outstanding++
	}
	t.node.counts.Delivered++
	c.totals.Delivered++
	return true
}

// disposition carries a consumer's outcome back to the sender (end-to-end).
func (c *core) disposition(l *engine.Link, d *engine.Delivery, state wire.DeliveryState, settled bool) {
	if relayDisposition(l, d, state, settled) { // a link-routed link (linkroute.go)
		return
	}
	co, ok := l.Context.(*consumer)
	if !ok {
		return
	}
	t, ok := d.Context.(*transit)
	if !ok {
		return
	}
	if _, final := state.(wire.Outcome); !final && !settled {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.done {
		return
	}
	co.outstanding--
	if state == nil {
		state = &wire.Accepted{} // settled without a state: taken as accepted
	}
	c.agent.consumerSettled(co, state)
	if t.copies != nil {
		c.copySettledLocked(t, state)
		return
	}
	c.settleSenderLocked(t, state)
}

// settleSenderLocked settles the sender's delivery with state, counting the outcome;
// fault hooks may hold or replace it.
func (c *core) settleSenderLocked(t *transit, state wire.DeliveryState) {
	if t.done {
		return
	}
	t.done = true
	if c.override != nil {
		state = c.override
	}
	switch state.(type) {
	case *wire.Accepted:
		t.node.counts.Accepted++
		c.totals.Accepted++
	case *wire.Released:
		t.node.counts.Released++
		c.totals.Released++
	case *wire.Modified:
		t.node.counts.Modified++
		c.totals.Modified++
	case *wire.Rejected:
		t.node.counts.Rejected++
		c.totals.Rejected++
	}
	if t.in == nil || t.settled {
		return
	}
	c.agent.outcome(t.sender, false, state)
	if c.holdSettle {
		c.held = append(c.held, heldOutcome{in: t.in, state: state, sender: t.sender})
		return
	}
	c.settleInLocked(t.in, state, t.sender)
}

// settleInLocked settles a sender's delivery and gives the sender its credit back.
// The credit goes first, as qdrouterd's flow comes before its disposition.
func (c *core) settleInLocked(in *engine.Delivery, state wire.DeliveryState, p *producer) {
	if p != nil {
		p.inFlight--
		c.topUpLocked(p)
	}
	in.Settle(state)
}

// linkDetached cleans up after a link that went away.
func (c *core) linkDetached(l *engine.Link, err *wire.Error) {
	if relayDetached(l, err) { // a link-routed link (linkroute.go)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch x := l.Context.(type) {
	case *consumer:
		n := x.node
		for i, co := range n.consumers {
			if co == x {
				n.consumers = append(n.consumers[:i:i], n.consumers[i+1:]...)
				break
			}
		}
		// Deliveries the consumer had and never settled are in doubt: qdrouterd
		// gives them back as modified (delivery-failed), never silently lost.
		// A multicast copy in doubt counts as released: the other copies' outcomes
		// make the sender's.
		for _, d := range l.Unsettled() {
			if t, ok := d.Context.(*transit); ok {
				if t.copies != nil {
					c.copySettledLocked(t, &wire.Released{})
					continue
				}
				c.settleSenderLocked(t, &wire.Modified{DeliveryFailed: true})
			}
		}
		// What was given to it and never sent goes back as released (pre-settled:
		// dropped), as qdrouterd's link clean-up does.
		for _, t := range x.undelivered {
			switch {
			case t.copies != nil:
				c.copyLostLocked(t)
			case t.settled:
				t.node.counts.Dropped++
				c.totals.Dropped++
			default:
				c.settleSenderLocked(t, &wire.Released{})
			}
		}
		x.undelivered = nil
		c.refreshCreditLocked(n)
		c.notifyLocked()
		c.gcLocked(n)
	case *producer:
		delete(c.anonymous, x)
		if n := x.node; n != nil {
			for i, p := range n.producers {
				if p == x {
					n.producers = append(n.producers[:i:i], n.producers[i+1:]...)
					break
				}
			}
			c.notifyLocked()
			c.gcLocked(n)
		}
	}
}
