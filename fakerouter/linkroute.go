package fakerouter

import (
	"errors"
	"strings"
	"sync"

	"github.com/amqp1kit/amqp1kit/internal/engine"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// Link routing, as qdrouterd 1.19.0 does it (observed frame by frame against qpidd
// 1.39.0, see conformance/linkroute_cases.go): an attach whose address matches a
// linkRoute in its direction ("in": the client sends, "out": it receives) is passed
// on to a route container (a broker on a connector of role route-container) as a new
// link named "<name>@<client container-id>", with snd-settle-mode mixed and
// rcv-settle-mode first whatever the client asked, and the client's termini as Proton
// copies them (every field written out, no default-outcome). The client's attach is
// answered once the broker answers, with the broker's termini (Proton's copy again)
// and mixed/first; a broker that refuses (a null terminus, then a detach) is relayed
// as such: the client gets empty termini, then the broker's detach. From then on the
// router relays: the broker's credit to a client sender (the broker's flow, as a flow
// of the same delivery-count and credit), a client receiver's credit and drain to the
// broker, transfers both ways (the engine names the client's delivery tags, where
// qdrouterd keeps the broker's), dispositions both ways, and detaches both ways.
// Without a connected route container the attach is refused (a null terminus on the
// router's side, then a detach with qd:no-route-to-dest "No route to the destination
// node"); when the route container's connection is lost, every link routed through
// it is detached (closed) with qd:routed-link-lost "Connectivity to the peer
// container was lost", unsettled deliveries without an outcome.

// linkRoutes is the link-routing state of a core: its routers' connectors and the
// route-container connections that are open.
type linkRoutes struct {
	mu         sync.Mutex
	connectors map[*Router][]*connector
	open       []*brokerConn // route-container connections, in the order they opened
	rr         map[int]int   // by route: the next connection to use among several
	changed    chan struct{} // closed when a connection opens or is lost
	connID     int32
}

func (lr *linkRoutes) changedLocked() chan struct{} {
	if lr.changed == nil {
		lr.changed = make(chan struct{})
	}
	return lr.changed
}

func (lr *linkRoutes) notifyLocked() {
	if lr.changed != nil {
		close(lr.changed)
		lr.changed = nil
	}
}

// nextConnID numbers the router's outgoing connections for their qd.conn-id.
func (lr *linkRoutes) nextConnID() int32 {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	lr.connID++
	return lr.connID
}

// opened makes a connector's new connection current, and a route container's
// connection available to the link routes.
func (lr *linkRoutes) opened(cn *connector, bc *brokerConn) {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	cn.current = bc
	if cn.cfg.role() == roleRouteContainer {
		lr.open = append(lr.open, bc)
	}
	lr.notifyLocked()
}

// lost forgets a connection that has ended.
func (lr *linkRoutes) lost(cn *connector, bc *brokerConn) {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	if cn.current == bc {
		cn.current = nil
	}
	for i, o := range lr.open {
		if o == bc {
			lr.open = append(lr.open[:i:i], lr.open[i+1:]...)
			break
		}
	}
	lr.notifyLocked()
}

// pick returns an open connection for route i (its connector by name, or a route
// container by its container-id), turning among several as qdrouterd does; nil when
// there is none.
func (lr *linkRoutes) pick(i int, route *LinkRoute) *brokerConn {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	var cands []*brokerConn
	for _, bc := range lr.open {
		if route.serves(bc) {
			cands = append(cands, bc)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	if lr.rr == nil {
		lr.rr = map[int]int{}
	}
	n := lr.rr[i]
	lr.rr[i] = n + 1
	return cands[n%len(cands)]
}

// linkRouteActive reports whether link route i (of c.routes) has a route container
// connected: qdrouterd's operStatus "active" (else "inactive").
func (c *core) linkRouteActive(i int) bool {
	c.mu.Lock()
	route := c.routes[i].route
	c.mu.Unlock()
	lr := &c.lr
	lr.mu.Lock()
	defer lr.mu.Unlock()
	for _, bc := range lr.open {
		if route.serves(bc) {
			return true
		}
	}
	return false
}

// serves reports whether the route container on bc serves the route: its connector
// by name, or its container-id.
func (route *LinkRoute) serves(bc *brokerConn) bool {
	if route.Connection != "" {
		return bc.cn.cfg.Name == route.Connection
	}
	return route.ContainerID != "" && bc.remoteContainer == route.ContainerID
}

// linkRouteFor returns the index in c.routes of the link route of addr for links of
// direction dir, the best match as qdrouterd's parse tree finds it (most literal
// segments, then the longest), and the route; -1 when none matches.
func (c *core) linkRouteFor(addr, dir string) (int, LinkRoute) {
	c.mu.Lock()
	defer c.mu.Unlock()
	segs := splitSegments(addr)
	best, bestLiteral, bestWeight := -1, -1, -1
	for i := range c.routes {
		cr := &c.routes[i]
		if cr.route.Direction != dir || !matchSegments(cr.segments, segs) {
			continue
		}
		literal := 0
		for _, s := range cr.segments {
			if s != "#" && s != "*" {
				literal++
			}
		}
		weight := len(cr.route.Prefix) + len(cr.route.Pattern)
		if literal > bestLiteral || (literal == bestLiteral && weight > bestWeight) {
			best, bestLiteral, bestWeight = i, literal, weight
		}
	}
	if best < 0 {
		return -1, LinkRoute{}
	}
	return best, c.routes[best].route
}

// The errors of qdrouterd's link routing (router_core/connections.c).
func noRouteToDest() *wire.Error {
	return &wire.Error{Condition: "qd:no-route-to-dest", Description: "No route to the destination node"}
}

func routedLinkLost() *wire.Error {
	return &wire.Error{Condition: "qd:routed-link-lost", Description: "Connectivity to the peer container was lost"}
}

// routedLink is one link-routed link: the client's link on the router (engine) and
// the router's link to the route container.
type routedLink struct {
	bc        *brokerConn
	client    *engine.Link
	name      string // on the route container: "<name>@<client container-id>"
	handle    uint32 // the router's on the route container's session
	receiving bool   // the router receives from the route container (a client receiver)
	route     LinkRoute

	// The fields below are guarded by bc.mu.
	answered chan struct{} // closed when the route container answered the attach, or was lost
	answer   *wire.Attach
	remote   uint32

	dc uint32 // deliveries on the route container's link
	// A client receiver: the limit (delivery-count + credit) last granted to the route
	// container, and messages waiting for the client's credit. A client sender: the
	// credit the route container granted, and whether it asked for a drain.
	limit, credit uint32
	granted       bool
	pending       []*relayIn
	partial       *relayIn
	brokerDrain   bool
	drainDone     chan struct{} // a client receiver's drain waits for the route container's answer

	detachSent   bool // the router detached (or answered) the route container's link
	gone         bool // the route container's link is gone
	clientGone   bool // the client's link is gone
	clientClosed bool // the router has closed the client's link
}

// relayIn is a message the route container sent on a link the router relays to a
// client receiver.
type relayIn struct {
	rl      *routedLink
	id      uint32 // the route container's delivery-id
	tag     []byte
	settled bool
	payload []byte
	d       *engine.Delivery // once sent to the client
}

// relayOut is a client's unsettled message the router sent on to the route container.
type relayOut struct {
	rl *routedLink
	id uint32 // the router's delivery-id on the route container's session
	d  *engine.Delivery
}

// outTransfer is a message being framed to the route container.
type outTransfer struct {
	rl      *routedLink
	id      uint32
	tag     []byte
	format  uint32
	settled bool
	payload []byte
	off     int
}

// linkRouteAttach passes a client's link to a route container when its address is
// link-routed, and reports whether it was; err then answers the attach as
// Handler.Attach's error does. It blocks until the route container answers (or its
// connection is lost): the client's attach is answered with the route container's.
func (c *core) linkRouteAttach(l *engine.Link) (routed bool, err error) {
	var addr, dir string
	if l.Role() == wire.RoleSender { // the client receives
		src := l.Source()
		if src == nil || src.Dynamic {
			return false, nil
		}
		addr, dir = src.Address, "out"
	} else {
		tgt := l.Target()
		if tgt == nil || tgt.Dynamic {
			return false, nil
		}
		addr, dir = tgt.Address, "in"
	}
	if addr == "" {
		return false, nil
	}
	i, route := c.linkRouteFor(addr, dir)
	if i < 0 {
		return false, nil
	}
	bc := c.lr.pick(i, &route)
	if bc == nil {
		refuseTermini(l)
		return true, noRouteToDest()
	}
	return true, bc.attach(l, route)
}

// refuseTermini sets the termini qdrouterd answers an attach it refuses itself with:
// its own terminus null (the engine nulls it), the client's as Proton copies it: a
// receiver's target as sent, a sender's source when it has an address or is dynamic.
func refuseTermini(l *engine.Link) {
	if l.Role() == wire.RoleSender {
		if t := l.Target(); t != nil {
			l.SetTarget(forwardTarget(t))
		}
		return
	}
	if s := l.Source(); s == nil || (s.Address == "" && !s.Dynamic) {
		l.SetSource(nil)
	} else {
		l.SetSource(forwardSource(s))
	}
}

// forwardSource is a client's source as qdrouterd sends it on (Proton's copy: every
// field but default-outcome, the expiry policy written out).
func forwardSource(s *wire.Source) *wire.Source {
	out := relaySource(s)
	if out.ExpiryPolicy == "" {
		out.ExpiryPolicy = wire.TerminusExpiryPolicySessionEnd
	}
	return out
}

func forwardTarget(t *wire.Target) *wire.Target {
	out := relayTarget(t)
	if out.ExpiryPolicy == "" {
		out.ExpiryPolicy = wire.TerminusExpiryPolicySessionEnd
	}
	return out
}

// relaySource is a route container's source as qdrouterd relays it: a null one
// becomes an empty one, default-outcome is dropped.
func relaySource(s *wire.Source) *wire.Source {
	out := &wire.Source{}
	if s != nil {
		*out = *s
		out.DefaultOutcome = nil
	}
	return out
}

func relayTarget(t *wire.Target) *wire.Target {
	out := &wire.Target{}
	if t != nil {
		*out = *t
	}
	return out
}

// rewritePrefix takes del off the start of addr (when there) and puts add before it,
// as qdrouterd's delExternalPrefix and addExternalPrefix do.
func rewritePrefix(addr, del, add string) string {
	if del != "" && strings.HasPrefix(addr, del) {
		addr = addr[len(del):]
	}
	if add != "" && addr != "" {
		addr = add + addr
	}
	return addr
}

// attach sends the client's attach on to the route container and waits for its
// answer.
func (bc *brokerConn) attach(l *engine.Link, route LinkRoute) error {
	rl := &routedLink{bc: bc, client: l, receiving: l.Role() == wire.RoleSender, route: route,
		answered: make(chan struct{})}
	rl.name = l.Name()
	if cid := l.Conn().ContainerID(); cid != "" {
		rl.name += "@" + cid
	}
	src, tgt := forwardSource(l.Source()), forwardTarget(l.Target())
	if rl.receiving {
		src.Address = rewritePrefix(src.Address, route.DelExternalPrefix, route.AddExternalPrefix)
	} else {
		tgt.Address = rewritePrefix(tgt.Address, route.DelExternalPrefix, route.AddExternalPrefix)
	}
	l.Context = rl
	zero := uint32(0)
	bc.mu.Lock()
	if bc.dead {
		bc.mu.Unlock()
		refuseTermini(l)
		return noRouteToDest()
	}
	for {
		if _, used := bc.handles[bc.handleHint]; !used {
			break
		}
		bc.handleHint++
	}
	rl.handle = bc.handleHint
	bc.handleHint++
	bc.handles[rl.handle] = rl
	bc.answering[rl.name] = append(bc.answering[rl.name], rl)
	if !bc.began {
		// qdrouterd begins one session for its link-routed links, with the first.
		bc.began = true
		bc.writeLocked(0, &wire.Begin{NextOutgoingID: bc.nextOutID, IncomingWindow: maxSessionWindow,
			OutgoingWindow: maxSessionWindow, HandleMax: 1<<32 - 1}, nil)
	}
	bc.writeLocked(0, &wire.Attach{Name: rl.name, Handle: rl.handle, Role: !l.Role(),
		SndSettleMode: wire.SenderSettleModeMixed, RcvSettleMode: wire.ReceiverSettleModeFirst,
		Source: src, Target: tgt, InitialDeliveryCount: &zero}, nil)
	bc.mu.Unlock()

	select {
	case <-rl.answered:
	case <-bc.done:
	}

	bc.mu.Lock()
	a := rl.answer
	if a == nil { // the connection was lost first
		bc.mu.Unlock()
		refuseTermini(l)
		return routedLinkLost()
	}
	src, tgt = relaySource(a.Source), relayTarget(a.Target)
	if rl.receiving {
		src.Address = rewritePrefix(src.Address, route.AddExternalPrefix, route.DelExternalPrefix)
	} else {
		tgt.Address = rewritePrefix(tgt.Address, route.AddExternalPrefix, route.DelExternalPrefix)
	}
	l.SetSource(src)
	l.SetTarget(tgt)
	bc.mu.Unlock()
	return nil
}

// maxSessionWindow is Proton's session window: link credit alone bounds transfers.
const maxSessionWindow = 1<<31 - 1

// closeClient detaches the client's link with err (closed), once. Before the client's
// attach is answered, the engine sends the detach right after the answer, which
// carries the termini the route container answered with, as qdrouterd relays a
// refusal.
func (rl *routedLink) closeClient(err *wire.Error) {
	bc := rl.bc
	bc.mu.Lock()
	if rl.clientClosed || rl.clientGone {
		bc.mu.Unlock()
		return
	}
	rl.clientClosed = true
	bc.mu.Unlock()
	rl.client.Close(err)
}

// wakeDrainLocked lets a client receiver's drain end.
func (rl *routedLink) wakeDrainLocked() {
	if rl.drainDone != nil {
		close(rl.drainDone)
		rl.drainDone = nil
	}
}

// The engine's callbacks for link-routed links (core.go calls these first).

// relayDelivery sends a client's message on to the route container.
func relayDelivery(l *engine.Link, d *engine.Delivery) bool {
	rl := routed(l)
	if rl == nil {
		return false
	}
	bc := rl.bc
	defer bc.mu.Unlock()
	if rl.endedLocked() {
		return true // the client's link is being detached
	}
	id := bc.nextDeliveryID
	bc.nextDeliveryID++
	rl.dc++
	if rl.credit > 0 {
		rl.credit--
	}
	if !d.Settled {
		o := &relayOut{rl: rl, id: id, d: d}
		bc.sentOut[id] = o
		d.Context = o
	}
	o := &outTransfer{rl: rl, id: id, tag: d.Tag, format: d.Format, settled: d.Settled, payload: d.Payload}
	if len(bc.pendingOut) > 0 || !bc.frameLocked(o) {
		bc.pendingOut = append(bc.pendingOut, o)
	}
	return true
}

// routed returns the routed link of l with its route container connection locked
// (the caller unlocks rl.bc.mu), or nil when l is not link-routed.
func routed(l *engine.Link) *routedLink {
	rl, ok := l.Context.(*routedLink)
	if !ok {
		return nil
	}
	rl.bc.mu.Lock()
	return rl
}

// endedLocked reports whether rl relays no more: the route container's link is gone
// or being detached, or the connection to the route container is.
func (rl *routedLink) endedLocked() bool { return rl.gone || rl.detachSent || rl.bc.dead }

// relayAborted is called when a client sender aborted a delivery on a link-routed
// link: nothing of it went to the route container (the engine drops what had
// arrived), whose credit therefore stands, so the client is given that credit again:
// a flow with its delivery-count advanced past the aborted delivery and the route
// container's credit, as qdrouterd 1.19.0 answers such an abort.
func relayAborted(l *engine.Link) bool {
	rl := routed(l)
	if rl == nil {
		return false
	}
	defer rl.bc.mu.Unlock()
	if !rl.endedLocked() && !rl.receiving {
		_ = rl.client.SetCredit(rl.credit)
	}
	return true
}

// frameLocked writes transfer frames of o while the peer's session window allows,
// split by its max-frame-size, and reports whether o is completely sent.
func (bc *brokerConn) frameLocked(o *outTransfer) bool {
	for bc.remoteInWindow > 0 {
		id := o.id
		t := &wire.Transfer{Handle: o.rl.handle, DeliveryID: &id, DeliveryTag: o.tag, Settled: o.settled}
		if o.off == 0 {
			format := o.format
			t.MessageFormat = &format
		}
		t.More = true
		var scratch [64]byte
		enc, _ := t.AppendTo(scratch[:0])
		room := int(bc.peerMaxFrame) - wire.FrameHeaderSize - len(enc)
		rest := o.payload[o.off:]
		if len(rest) <= room {
			t.More = false
		} else {
			rest = rest[:room]
		}
		bc.writeLocked(0, t, rest)
		bc.remoteInWindow--
		bc.nextOutID++
		o.off += len(rest)
		if !t.More {
			return true
		}
	}
	return false
}

// flushOutLocked frames waiting transfers while the peer's window allows.
func (bc *brokerConn) flushOutLocked() {
	for len(bc.pendingOut) > 0 && bc.remoteInWindow > 0 {
		if !bc.frameLocked(bc.pendingOut[0]) {
			return
		}
		bc.pendingOut[0] = nil
		bc.pendingOut = bc.pendingOut[1:]
	}
}

// relayCredit relays a client's flow: a receiver's credit (and drain) to the route
// container; a sender's answer to a drain the route container asked for.
func relayCredit(l *engine.Link) bool {
	rl := routed(l)
	if rl == nil {
		return false
	}
	bc := rl.bc
	if rl.endedLocked() {
		bc.mu.Unlock()
		return true
	}
	if !rl.receiving {
		if rl.brokerDrain {
			if cc := l.Credit(); cc < rl.credit {
				rl.dc += rl.credit - cc
				rl.credit = cc
			}
			if rl.credit == 0 {
				rl.brokerDrain = false
				bc.linkFlowLocked(rl, 0, true)
			}
		}
		bc.mu.Unlock()
		return true
	}
	rl.flushLocked()
	credit := uint32(0)
	if len(rl.pending) == 0 {
		credit = l.Credit()
	}
	drain := l.Draining()
	if limit := rl.dc + credit; !rl.granted || limit != rl.limit || drain {
		rl.granted, rl.limit = true, limit
		bc.linkFlowLocked(rl, credit, drain)
	}
	var wait chan struct{}
	if drain && credit > 0 {
		// qdrouterd answers the client's drain when the route container has answered
		// it (after the messages it still had): hold the engine's answer until then.
		if rl.drainDone == nil {
			rl.drainDone = make(chan struct{})
		}
		wait = rl.drainDone
	}
	bc.mu.Unlock()
	if wait != nil {
		select {
		case <-wait:
		case <-bc.done:
		}
	}
	return true
}

// linkFlowLocked sends the route container a flow of rl's.
func (bc *brokerConn) linkFlowLocked(rl *routedLink, credit uint32, drain bool) {
	next := bc.nextInID
	h, dc := rl.handle, rl.dc
	bc.writeLocked(0, &wire.Flow{NextIncomingID: &next, IncomingWindow: maxSessionWindow,
		NextOutgoingID: bc.nextOutID, OutgoingWindow: maxSessionWindow,
		Handle: &h, DeliveryCount: &dc, LinkCredit: &credit, Drain: drain}, nil)
}

// flushLocked sends messages waiting for the client's credit.
func (rl *routedLink) flushLocked() {
	for len(rl.pending) > 0 {
		if !rl.sendLocked(rl.pending[0]) {
			return
		}
		rl.pending[0] = nil
		rl.pending = rl.pending[1:]
	}
}

// sendLocked sends m to the client and reports whether it is done with (false: the
// client has no credit for it yet).
func (rl *routedLink) sendLocked(m *relayIn) bool {
	d, err := rl.client.Send(m.payload, m.settled, m)
	if errors.Is(err, engine.ErrNoCredit) {
		return false
	}
	m.payload = nil
	if err != nil {
		// The client's link is closing, or the message is beyond its
		// max-message-size: the route container gets it back.
		if !m.settled && !errors.Is(err, engine.ErrLinkClosed) {
			delete(rl.bc.recvIn, m.id)
			rl.bc.writeLocked(0, &wire.Disposition{Role: wire.RoleReceiver, First: m.id, Settled: true,
				State: &wire.Modified{DeliveryFailed: true, UndeliverableHere: true}}, nil)
		}
		return true
	}
	m.d = d
	return true
}

// relayDisposition relays a client's settlement or outcome to the route container.
func relayDisposition(l *engine.Link, d *engine.Delivery, state wire.DeliveryState, settled bool) bool {
	rl := routed(l)
	if rl == nil {
		return false
	}
	bc := rl.bc
	defer bc.mu.Unlock()
	if rl.endedLocked() {
		return true
	}
	switch x := d.Context.(type) {
	case *relayIn: // a message of the route container: the client's outcome
		bc.writeLocked(0, &wire.Disposition{Role: wire.RoleReceiver, First: x.id, Settled: settled, State: state}, nil)
		if settled {
			delete(bc.recvIn, x.id)
		}
	case *relayOut: // the client's message: the client settles it
		bc.writeLocked(0, &wire.Disposition{Role: wire.RoleSender, First: x.id, Settled: settled, State: state}, nil)
		if settled {
			delete(bc.sentOut, x.id)
		}
	}
	return true
}

// isClientDefaultDetach reports whether err is what the engine reports for a client's
// detach that carried no error.
func isClientDefaultDetach(err *wire.Error) bool {
	return err != nil && err.Condition == wire.ErrCondDetachForced && err.Description == "detached by the client"
}

// relayDetached relays the end of a client's link to the route container: the
// client's detach as it came, or qd:routed-link-lost when its session or connection
// went away, as qdrouterd does.
func relayDetached(l *engine.Link, err *wire.Error) bool {
	rl := routed(l)
	if rl == nil {
		return false
	}
	bc := rl.bc
	defer bc.mu.Unlock()
	rl.clientGone = true
	rl.pending = nil
	rl.wakeDrainLocked()
	if rl.endedLocked() {
		return true
	}
	closed := true
	var e *wire.Error
	if l.DetachedByPeer() {
		closed = l.ClosedByPeer()
		if !isClientDefaultDetach(err) {
			e = err
		}
	} else {
		e = routedLinkLost()
	}
	rl.detachSent = true
	bc.removePendingOutLocked(rl)
	bc.writeLocked(0, &wire.Detach{Handle: rl.handle, Closed: closed, Error: e}, nil)
	return true
}

func (bc *brokerConn) removePendingOutLocked(rl *routedLink) {
	kept := bc.pendingOut[:0]
	for _, o := range bc.pendingOut {
		if o.rl != rl {
			kept = append(kept, o)
		}
	}
	bc.pendingOut = kept
}

// freeLinkLocked forgets a link both sides have detached.
func (bc *brokerConn) freeLinkLocked(rl *routedLink) {
	rl.gone = true
	if bc.handles[rl.handle] == rl {
		delete(bc.handles, rl.handle)
		bc.handleHint = min(bc.handleHint, rl.handle)
	}
	for id, o := range bc.sentOut {
		if o.rl == rl {
			delete(bc.sentOut, id)
		}
	}
	for id, m := range bc.recvIn {
		if m.rl == rl {
			delete(bc.recvIn, id)
		}
	}
	rl.pending = nil
	rl.partial = nil
	bc.removePendingOutLocked(rl)
	rl.wakeDrainLocked()
}

// loseLinksLocked forgets every link of the connection, which is gone, and returns
// the attached ones whose client links must be detached. Attaches still waiting for
// an answer are refused by their own goroutines.
func (bc *brokerConn) loseLinksLocked() []*routedLink {
	var lost []*routedLink
	for _, rl := range bc.handles {
		rl.wakeDrainLocked()
		if rl.answer == nil {
			close(rl.answered)
		} else if !rl.gone && !rl.clientGone && !rl.detachSent {
			lost = append(lost, rl)
		}
		rl.gone = true
		rl.pending, rl.partial = nil, nil
	}
	bc.handles = map[uint32]*routedLink{}
	bc.byRemote = map[uint32]*routedLink{}
	bc.answering = map[string][]*routedLink{}
	bc.sentOut = map[uint32]*relayOut{}
	bc.recvIn = map[uint32]*relayIn{}
	bc.pendingOut = nil
	bc.handleHint = 0
	bc.began = false
	return lost
}

// dispatch handles one frame from the route container and reports whether the
// connection is over (the peer closed it).
func (bc *brokerConn) dispatch(f inFrame) (done bool, err error) {
	var closes []*routedLink
	var closeErrs []*wire.Error
	bc.mu.Lock()
	switch p := f.body.(type) {
	case *wire.Begin:
		if p.RemoteChannel != nil { // the answer to the router's begin
			bc.nextInID = p.NextOutgoingID
			bc.remoteInWindow = p.IncomingWindow - bc.nextOutID
			bc.flushOutLocked()
		}
	case *wire.Attach:
		bc.peerAttachLocked(p)
	case *wire.Flow:
		bc.peerFlowLocked(p)
	case *wire.Transfer:
		bc.peerTransferLocked(p, f.payload)
	case *wire.Disposition:
		bc.peerDispositionLocked(p)
	case *wire.Detach:
		rl := bc.byRemote[p.Handle]
		if rl == nil {
			break
		}
		delete(bc.byRemote, p.Handle)
		if !rl.detachSent {
			// The route container detaches: answer it, and detach the client's link
			// with its error.
			rl.detachSent = true
			bc.writeLocked(0, &wire.Detach{Handle: rl.handle, Closed: p.Closed}, nil)
			if !rl.clientGone {
				closes, closeErrs = append(closes, rl), append(closeErrs, p.Error)
			}
		}
		bc.freeLinkLocked(rl)
	case *wire.End:
		// The route container ended the session: its links are lost.
		if bc.began {
			bc.writeLocked(0, &wire.End{}, nil)
		}
		for _, rl := range bc.loseLinksLocked() {
			closes, closeErrs = append(closes, rl), append(closeErrs, routedLinkLost())
		}
		bc.nextOutID, bc.nextInID, bc.remoteInWindow = 0, 0, 1<<32-1
	case *wire.Close:
		if p.Error != nil {
			err = p.Error
		}
		if !bc.closeSent {
			bc.writeLocked(0, &wire.Close{}, nil)
			bc.closeSent = true
		}
		done = true
	case *wire.Open:
		bc.mu.Unlock()
		bc.closeWith(&wire.Error{Condition: wire.ErrCondIllegalState, Description: "second open"})
		return true, errors.New("the peer sent a second open")
	}
	bc.mu.Unlock()
	for i, rl := range closes {
		rl.closeClient(closeErrs[i])
	}
	return done, err
}

// peerAttachLocked matches the route container's attach to the router's.
func (bc *brokerConn) peerAttachLocked(a *wire.Attach) {
	q := bc.answering[a.Name]
	if len(q) == 0 {
		// The route container attaches a link of its own: qdrouterd would route it
		// by its address; the fake refuses it.
		h := bc.handleHint
		for {
			if _, used := bc.handles[h]; !used {
				break
			}
			h++
		}
		bc.writeLocked(0, &wire.Attach{Name: a.Name, Handle: h, Role: !a.Role,
			SndSettleMode: wire.SenderSettleModeMixed, RcvSettleMode: wire.ReceiverSettleModeFirst}, nil)
		bc.writeLocked(0, &wire.Detach{Handle: h, Closed: true, Error: noRouteToDest()}, nil)
		return
	}
	rl := q[0]
	if len(q) == 1 {
		delete(bc.answering, a.Name)
	} else {
		bc.answering[a.Name] = q[1:]
	}
	rl.answer, rl.remote = a, a.Handle
	bc.byRemote[a.Handle] = rl
	if rl.receiving && a.InitialDeliveryCount != nil {
		rl.dc = *a.InitialDeliveryCount
	}
	close(rl.answered)
}

// peerFlowLocked takes the route container's session window and relays its link
// flows: credit to a client sender, a drain's answer to a client receiver.
func (bc *brokerConn) peerFlowLocked(f *wire.Flow) {
	nextIn := uint32(0)
	if f.NextIncomingID != nil {
		nextIn = *f.NextIncomingID
	}
	bc.remoteInWindow = nextIn + f.IncomingWindow - bc.nextOutID
	bc.flushOutLocked()
	if f.Handle == nil {
		return
	}
	rl := bc.byRemote[*f.Handle]
	if rl == nil || rl.gone || rl.detachSent || rl.clientGone {
		return
	}
	if rl.receiving {
		if f.DeliveryCount != nil && int32(*f.DeliveryCount-rl.dc) > 0 {
			rl.dc = *f.DeliveryCount // the route container spent credit (a drain)
		}
		if f.LinkCredit != nil && *f.LinkCredit == 0 {
			rl.wakeDrainLocked()
		}
		return
	}
	if f.LinkCredit != nil {
		dc := rl.dc
		if f.DeliveryCount != nil {
			dc = *f.DeliveryCount
		}
		credit := int32(dc + *f.LinkCredit - rl.dc)
		rl.credit = uint32(max(credit, 0))
		_ = rl.client.SetCredit(rl.credit)
	}
	if f.Drain && rl.credit > 0 {
		rl.brokerDrain = true
		_ = rl.client.Drain()
	}
}

// peerTransferLocked assembles the route container's message and sends it to the
// client receiver (or holds it for the client's credit).
func (bc *brokerConn) peerTransferLocked(t *wire.Transfer, payload []byte) {
	bc.nextInID++
	rl := bc.byRemote[t.Handle]
	if rl == nil || !rl.receiving {
		return
	}
	m := rl.partial
	if m == nil {
		if t.DeliveryID == nil {
			return
		}
		rl.dc++
		m = &relayIn{rl: rl, id: *t.DeliveryID, tag: t.DeliveryTag}
		rl.partial = m
	}
	m.payload = append(m.payload, payload...)
	if limit := bc.cn.maxMessage; limit > 0 && int64(len(m.payload)) > limit {
		// Beyond the router's max-message-size: the link fails on both sides.
		rl.partial = nil
		e := &wire.Error{Condition: wire.ErrCondMessageSizeExceeded, Description: "message larger than the router's max-message-size"}
		if !rl.detachSent {
			rl.detachSent = true
			bc.removePendingOutLocked(rl)
			bc.writeLocked(0, &wire.Detach{Handle: rl.handle, Closed: true, Error: e}, nil)
			if !rl.clientGone {
				go rl.closeClient(e)
			}
		}
		return
	}
	if t.Settled {
		m.settled = true
	}
	if t.Aborted {
		rl.partial = nil
		return
	}
	if t.More {
		return
	}
	rl.partial = nil
	if rl.gone || rl.clientGone || rl.detachSent {
		return
	}
	if !m.settled {
		bc.recvIn[m.id] = m
	}
	if len(rl.pending) > 0 || !rl.sendLocked(m) {
		rl.pending = append(rl.pending, m)
	}
	if rl.drainDone != nil && rl.client.Credit() == 0 {
		rl.wakeDrainLocked()
	}
}

// peerDispositionLocked relays the route container's outcomes and settlements to the
// clients.
func (bc *brokerConn) peerDispositionLocked(dp *wire.Disposition) {
	last := dp.First
	if dp.Last != nil {
		last = *dp.Last
	}
	span := last - dp.First
	if dp.Role == wire.RoleReceiver { // about the messages the router sent
		visit := func(id uint32, o *relayOut) {
			switch {
			case o.rl.clientGone: // the client's link is gone, and its deliveries with it
				delete(bc.sentOut, id)
			case dp.Settled:
				delete(bc.sentOut, id)
				o.d.Settle(dp.State)
			default:
				o.d.Update(dp.State)
			}
		}
		if uint64(span) < uint64(len(bc.sentOut)) {
			for i := uint32(0); ; i++ {
				if o, ok := bc.sentOut[dp.First+i]; ok {
					visit(dp.First+i, o)
				}
				if i == span {
					break
				}
			}
		} else {
			for id, o := range bc.sentOut {
				if id-dp.First <= span {
					visit(id, o)
				}
			}
		}
		return
	}
	visit := func(id uint32, m *relayIn) {
		if dp.Settled || m.rl.clientGone {
			delete(bc.recvIn, id)
		}
		if m.rl.clientGone {
			return
		}
		if m.d == nil { // still waiting for the client's credit
			if dp.Settled {
				rl := m.rl
				for i, p := range rl.pending {
					if p == m {
						rl.pending = append(rl.pending[:i:i], rl.pending[i+1:]...)
						break
					}
				}
			}
			return
		}
		if dp.Settled {
			m.d.Settle(dp.State)
		} else {
			m.d.Update(dp.State)
		}
	}
	if uint64(span) < uint64(len(bc.recvIn)) {
		for i := uint32(0); ; i++ {
			if m, ok := bc.recvIn[dp.First+i]; ok {
				visit(dp.First+i, m)
			}
			if i == span {
				break
			}
		}
	} else {
		for id, m := range bc.recvIn {
			if id-dp.First <= span {
				visit(id, m)
			}
		}
	}
}
