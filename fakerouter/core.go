package fakerouter

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"

	"github.com/amqp1kit/amqp1kit/internal/engine"
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

	creditStopped bool
	holdSettle    bool
	held          []heldOutcome
	override      wire.DeliveryState
}

type compiledRoute struct {
	route    LinkRoute
	segments []string
}

type heldOutcome struct {
	in    *engine.Delivery
	state wire.DeliveryState
}

// node is one address with its consumers (links the router sends on) and senders.
type node struct {
	name      string
	dist      Distribution
	dynamic   bool
	consumers []*consumer
	producers []*producer
	waiting   []*transit // anycast messages waiting for a consumer's credit
	rr        int
	counts    Counts
}

type consumer struct {
	link        *engine.Link
	r           *Router
	node        *node
	backlog     []*transit // multicast copies waiting for this consumer's credit
	outstanding int        // unsettled deliveries sent on the link
}

type producer struct {
	link *engine.Link
	r    *Router
	node *node // nil on an anonymous-relay link
}

// transit is a message on its way through the router.
type transit struct {
	in      *engine.Delivery // the sender's delivery; settled back end-to-end
	payload []byte
	node    *node
	from    *Router
	settled bool // the sender sent it pre-settled
	done    bool // the sender has its outcome
}

// maxBacklog bounds the multicast copies waiting for one slow consumer; past it copies
// for that consumer are dropped (and counted), as a router holds no store.
const maxBacklog = 10000

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
		if stopped {
			_ = p.link.SetCredit(0)
		} else {
			c.topUpAnonymousLocked(p.link)
		}
	}
}

// notifyLocked wakes waiters on the topology.
func (c *core) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *core) nodeLocked(addr string) *node {
	n := c.nodes[addr]
	if n == nil {
		dist, _ := c.table.lookup(addr)
		n = &node{name: addr, dist: dist}
		c.nodes[addr] = n
	}
	return n
}

func (c *core) gcLocked(n *node) {
	if len(n.consumers) == 0 && len(n.producers) == 0 && len(n.waiting) == 0 {
		if c.nodes[n.name] == n {
			delete(c.nodes, n.name)
		}
	}
}

func (c *core) linkRouted(addr string) *LinkRoute {
	segs := splitSegments(addr)
	for i := range c.routes {
		if matchSegments(c.routes[i].segments, segs) {
			return &c.routes[i].route
		}
	}
	return nil
}

func randomSuffix() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func notFound(format string, args ...any) *wire.Error {
	return &wire.Error{Condition: wire.ErrCondNotFound, Description: fmt.Sprintf(format, args...)}
}

// attachNodeLocked returns the node a link attaches to, refusing link-routed and
// unavailable addresses. A dynamic node (named by the router for a dynamic source) is
// never link-routed and is closest.
func (c *core) attachNodeLocked(addr string, dynamic bool) (*node, error) {
	if lr := c.linkRouted(addr); lr != nil && !dynamic {
		return nil, notFound("address %q is link-routed to connection %q, which is not connected", addr, lr.Connection)
	}
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
	if l.Role() == wire.RoleSender { // the client receives
		src := l.Source()
		if src != nil && src.Dynamic {
			l.SetSourceAddress(fmt.Sprintf("amqp:/_topo/0/%s/temp.%s", r.opts.ID, randomSuffix()))
		}
		addr := l.Address()
		if addr == "" {
			return &wire.Error{Condition: wire.ErrCondInvalidField, Description: "a receiving link needs a source address or a dynamic source"}
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		dynamic := src != nil && src.Dynamic
		n, err := c.attachNodeLocked(addr, dynamic)
		if err != nil {
			return err
		}
		co := &consumer{link: l, r: r, node: n}
		l.Context = co
		n.consumers = append(n.consumers, co)
		c.notifyLocked()
		return nil
	}
	// The client sends.
	addr := l.Address()
	c.mu.Lock()
	defer c.mu.Unlock()
	if addr == "" { // anonymous relay: route each message by its to property
		p := &producer{link: l, r: r}
		l.Context = p
		c.anonymous[p] = struct{}{}
		if !c.creditStopped {
			return l.SetCredit(c.capacity)
		}
		return nil
	}
	n, err := c.attachNodeLocked(addr, false)
	if err != nil {
		return err
	}
	p := &producer{link: l, r: r, node: n}
	l.Context = p
	n.producers = append(n.producers, p)
	c.notifyLocked()
	c.refreshCreditLocked(n)
	return nil
}

// creditTarget is the credit each sender of n should hold.
func (c *core) creditTargetLocked(n *node) uint32 {
	if c.creditStopped {
		return 0
	}
	if n.dist == Multicast {
		if c.multicastWaits && len(n.consumers) == 0 {
			return 0
		}
		return c.capacity
	}
	avail := -len(n.waiting)
	for _, co := range n.consumers {
		avail += int(co.link.Credit())
	}
	if avail <= 0 {
		return 0
	}
	return min(uint32(avail), c.capacity)
}

// refreshCreditLocked makes the senders' credit follow what the consumers can take.
func (c *core) refreshCreditLocked(n *node) {
	target := c.creditTargetLocked(n)
	for _, p := range n.producers {
		cur := p.link.Credit()
		switch {
		case target == 0 && cur > 0:
			_ = p.link.SetCredit(0)
		case target > 0 && cur*2 <= target:
			_ = p.link.SetCredit(target)
		}
	}
}

// credit is called when a client changed the credit of a link the router sends on.
func (c *core) credit(l *engine.Link) {
	co, ok := l.Context.(*consumer)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pumpLocked(co.node)
	c.refreshCreditLocked(co.node)
}

// pumpLocked sends waiting messages of n to consumers with credit.
func (c *core) pumpLocked(n *node) {
	for _, co := range n.consumers {
		for len(co.backlog) > 0 && co.link.Credit() > 0 {
			t := co.backlog[0]
			co.backlog = co.backlog[1:]
			c.forwardLocked(t, co)
		}
	}
	for len(n.waiting) > 0 {
		co := c.pickLocked(n, n.waiting[0].from)
		if co == nil {
			return
		}
		t := n.waiting[0]
		n.waiting[0] = nil
		n.waiting = n.waiting[1:]
		c.forwardLocked(t, co)
	}
}

// pickLocked chooses the consumer of an anycast message, or nil if none has credit.
func (c *core) pickLocked(n *node, from *Router) *consumer {
	k := len(n.consumers)
	if k == 0 {
		return nil
	}
	var best *consumer
	switch n.dist {
	case Balanced:
		for i := range k {
			co := n.consumers[(n.rr+i)%k]
			if co.link.Credit() == 0 {
				continue
			}
			if best == nil || co.outstanding < best.outstanding {
				best = co
			}
		}
	default: // Closest: local consumers first, in turn.
		for pass := 0; pass < 2 && best == nil; pass++ {
			for i := range k {
				co := n.consumers[(n.rr+i)%k]
				if (pass == 0) != (co.r == from) || co.link.Credit() == 0 {
					continue
				}
				best = co
				break
			}
		}
	}
	if best != nil {
		n.rr++
	}
	return best
}

// delivery routes a message a client sent on link l.
func (c *core) delivery(l *engine.Link, d *engine.Delivery) {
	p, ok := l.Context.(*producer)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n := p.node
	if n == nil { // anonymous relay
		_, props, err := wire.ScanMessage(d.Payload)
		to := ""
		if err == nil && props != nil {
			to = props.To
		}
		if to == "" {
			c.totals.Rejected++
			d.Settle(&wire.Rejected{Error: &wire.Error{Condition: wire.ErrCondInvalidField,
				Description: "message on an anonymous link without a to address"}})
			c.topUpAnonymousLocked(l)
			return
		}
		dist, _ := c.table.lookup(to)
		if existing := c.nodes[to]; existing != nil {
			dist = existing.dist
		}
		if dist == Unavailable {
			c.totals.Rejected++
			d.Settle(&wire.Rejected{Error: notFound("address %q is unavailable", to)})
			c.topUpAnonymousLocked(l)
			return
		}
		n = c.nodeLocked(to)
		defer c.gcLocked(n)
		defer c.topUpAnonymousLocked(l)
	}
	n.counts.Ingress++
	c.totals.Ingress++
	if p.node != nil {
		defer c.topUpLocked(p)
	}
	t := &transit{in: d, payload: d.Payload, node: n, from: p.r, settled: d.Settled}
	if n.dist == Multicast {
		c.multicastLocked(t)
		return
	}
	if co := c.pickLocked(n, p.r); co != nil && len(n.waiting) == 0 {
		c.forwardLocked(t, co)
		return
	}
	if len(n.consumers) > 0 {
		n.waiting = append(n.waiting, t)
		return
	}
	c.noPathLocked(t)
}

// topUpLocked renews a sender's credit once it has used half of what it may hold.
func (c *core) topUpLocked(p *producer) {
	target := c.creditTargetLocked(p.node)
	if target > 0 && p.link.Credit()*2 <= target {
		_ = p.link.SetCredit(target)
	}
}

func (c *core) topUpAnonymousLocked(l *engine.Link) {
	if !c.creditStopped && l.Credit()*2 <= c.capacity {
		_ = l.SetCredit(c.capacity)
	}
}

// noPathLocked gives a message no consumer can take back to its sender: released when
// unsettled, dropped when pre-settled (qdrouterd's undeliverable handling).
func (c *core) noPathLocked(t *transit) {
	if t.settled {
		t.node.counts.Dropped++
		c.totals.Dropped++
		return
	}
	c.settleSenderLocked(t, &wire.Released{})
}

func (c *core) multicastLocked(t *transit) {
	n := t.node
	if len(n.consumers) == 0 {
		// The guide's qdrouterd drops multicast with no consumer.
		n.counts.Dropped++
		c.totals.Dropped++
		if !t.settled {
			c.settleSenderLocked(t, &wire.Released{})
		}
		return
	}
	for _, co := range n.consumers {
		cp := &transit{payload: t.payload, node: n, from: t.from, settled: true}
		if co.link.Credit() > 0 && len(co.backlog) == 0 {
			c.forwardLocked(cp, co)
		} else if len(co.backlog) < maxBacklog {
			co.backlog = append(co.backlog, cp)
		} else {
			n.counts.Dropped++
			c.totals.Dropped++
		}
	}
	if !t.settled {
		c.settleSenderLocked(t, &wire.Accepted{})
	}
}

// forwardLocked sends t to consumer co.
func (c *core) forwardLocked(t *transit, co *consumer) {
	_, err := co.link.Send(t.payload, t.settled, t)
	if err != nil {
		// The consumer lost its credit or went away meanwhile: try again later.
		if t.node.dist == Multicast {
			t.node.counts.Dropped++
			c.totals.Dropped++
			return
		}
		t.node.waiting = append([]*transit{t}, t.node.waiting...)
		return
	}
	if !t.settled {
		co.outstanding++
	}
	t.node.counts.Delivered++
	c.totals.Delivered++
}

// disposition carries a consumer's outcome back to the sender (end-to-end).
func (c *core) disposition(l *engine.Link, d *engine.Delivery, state wire.DeliveryState, settled bool) {
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
	c.settleSenderLocked(t, state)
	if co.node.dist == Balanced {
		c.pumpLocked(co.node)
	}
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
	if c.holdSettle {
		c.held = append(c.held, heldOutcome{in: t.in, state: state})
		return
	}
	t.in.Settle(state)
}

// linkDetached cleans up after a link that went away.
func (c *core) linkDetached(l *engine.Link) {
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
		for _, d := range l.Unsettled() {
			if t, ok := d.Context.(*transit); ok {
				c.settleSenderLocked(t, &wire.Modified{DeliveryFailed: true})
			}
		}
		if len(n.consumers) == 0 {
			for _, t := range n.waiting {
				c.noPathLocked(t)
			}
			n.waiting = nil
		} else {
			c.pumpLocked(n)
		}
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
