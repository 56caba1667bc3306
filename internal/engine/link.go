package engine

import (
	"encoding/binary"
	"errors"
	"math"

	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// Errors of Link.Send.
var (
	// ErrNoCredit means the peer has not granted credit for another delivery.
	ErrNoCredit = errors.New("amqp1kit engine: no link credit")
	// ErrLinkClosed means the link is detached or its connection is gone.
	ErrLinkClosed = errors.New("amqp1kit engine: link closed")
	// ErrWrongRole means the operation needs the other role.
	ErrWrongRole = errors.New("amqp1kit engine: operation not valid for the link's role")
)

// Link is one attached link. Its role is the server's: RoleSender means the server
// sends messages to the client (the client attached a receiver).
type Link struct {
	s         *session
	name      string
	local     uint32
	remote    uint32
	role      wire.Role
	source    *wire.Source
	target    *wire.Target
	sndSettle wire.SenderSettleMode
	rcvSettle wire.ReceiverSettleMode

	deliveryCount uint32
	credit        uint32
	drain         bool
	grantedLimit  uint32 // where the server receives: highest delivery-count+credit granted
	available     uint32
	nextTag       uint64
	partial       *Delivery
	unsettled     map[uint32]*Delivery // sent by the server, not settled by the peer
	accepted      bool
	answered      bool // the server's attach was sent
	closeOnAnswer bool // Close was called before the answer: detach right after it
	closeErr      *wire.Error
	flowPending   bool // credit granted during Attach, to announce after it
	// flowDeferred: a flow waits behind deliveries queued for the session window;
	// flowDeferredDrain: it answers a drain.
	flowDeferred      bool
	flowDeferredDrain bool
	detachSent        bool
	gone              bool
	peerDetached      bool // the peer sent a detach for the link
	peerClosed        bool // with closed set

	// Context is free for the handler's per-link state.
	Context any
}

// Name returns the link name.
func (l *Link) Name() string { return l.name }

// Conn returns the link's connection.
func (l *Link) Conn() *Conn { return l.s.c }

// Role returns the server's role on the link.
func (l *Link) Role() wire.Role { return l.role }

// Source returns the link's source terminus as the handler will answer it (do not
// modify it: use SetSourceAddress).
func (l *Link) Source() *wire.Source {
	l.s.c.mu.Lock()
	defer l.s.c.mu.Unlock()
	return l.source
}

// Target returns the link's target terminus as the handler will answer it (do not
// modify it: use SetTargetAddress).
func (l *Link) Target() *wire.Target {
	l.s.c.mu.Lock()
	defer l.s.c.mu.Unlock()
	return l.target
}

// SenderSettleMode returns the negotiated sender settle mode.
func (l *Link) SenderSettleMode() wire.SenderSettleMode { return l.sndSettle }

// ReceiverSettleMode returns the negotiated receiver settle mode.
func (l *Link) ReceiverSettleMode() wire.ReceiverSettleMode { return l.rcvSettle }

// SetSettleModes sets the settle modes the server answers the attach with, instead of
// echoing the peer's (part 2.7.3: the answer says which modes are in use). Call it
// only from Handler.Attach.
func (l *Link) SetSettleModes(snd wire.SenderSettleMode, rcv wire.ReceiverSettleMode) {
	l.s.c.mu.Lock()
	defer l.s.c.mu.Unlock()
	l.sndSettle, l.rcvSettle = snd, rcv
}

// Address returns the address of the node the link is attached to on the server:
// the source address where the server sends, the target address where it receives.
func (l *Link) Address() string {
	l.s.c.mu.Lock()
	defer l.s.c.mu.Unlock()
	if l.role == wire.RoleSender {
		if l.source != nil {
			return l.source.Address
		}
		return ""
	}
	if l.target != nil {
		return l.target.Address
	}
	return ""
}

// SetSourceAddress names the source node, for example a dynamic node during Attach.
func (l *Link) SetSourceAddress(addr string) {
	l.s.c.mu.Lock()
	defer l.s.c.mu.Unlock()
	if l.source == nil {
		l.source = &wire.Source{}
	}
	src := *l.source
	src.Address = addr
	l.source = &src
}

// SetTargetAddress names the target node, for example a dynamic node during Attach.
func (l *Link) SetTargetAddress(addr string) {
	l.s.c.mu.Lock()
	defer l.s.c.mu.Unlock()
	if l.target == nil {
		l.target = &wire.Target{}
	}
	tgt := *l.target
	tgt.Address = addr
	l.target = &tgt
}

// SetSource replaces the source terminus the server answers the attach with (by
// default the client's, as it came). Call it only from Handler.Attach.
func (l *Link) SetSource(src *wire.Source) {
	l.s.c.mu.Lock()
	defer l.s.c.mu.Unlock()
	l.source = src
}

// SetTarget replaces the target terminus the server answers the attach with (by
// default the client's, as it came). Call it only from Handler.Attach.
func (l *Link) SetTarget(tgt *wire.Target) {
	l.s.c.mu.Lock()
	defer l.s.c.mu.Unlock()
	l.target = tgt
}

// DetachedByPeer reports whether the peer detached the link (closed or not), as
// opposed to the link going with its session or connection, or the server closing
// it.
func (l *Link) DetachedByPeer() bool {
	l.s.c.mu.Lock()
	defer l.s.c.mu.Unlock()
	return l.peerDetached
}

// ClosedByPeer reports whether the peer detached the link with closed set (qpidd
// deletes an auto-deleted subscription at once then, and after its delay when the
// link only goes away).
func (l *Link) ClosedByPeer() bool {
	l.s.c.mu.Lock()
	defer l.s.c.mu.Unlock()
	return l.peerClosed
}

// Credit returns the credit: where the server sends, how many more deliveries the
// peer accepts; where it receives, how many the server granted and has not received.
func (l *Link) Credit() uint32 {
	l.s.c.mu.Lock()
	defer l.s.c.mu.Unlock()
	return l.credit
}

// Draining reports whether the peer asked the server to use or give back its credit.
func (l *Link) Draining() bool {
	l.s.c.mu.Lock()
	defer l.s.c.mu.Unlock()
	return l.drain
}

// Closed reports whether the link is gone.
func (l *Link) Closed() bool {
	l.s.c.mu.Lock()
	defer l.s.c.mu.Unlock()
	return l.gone || l.detachSent
}

// Unsettled returns the deliveries the server sent on the link that the peer has not
// settled.
func (l *Link) Unsettled() []*Delivery {
	l.s.c.mu.Lock()
	defer l.s.c.mu.Unlock()
	out := make([]*Delivery, 0, len(l.unsettled))
	for _, d := range l.unsettled {
		out = append(out, d)
	}
	return out
}

func (l *Link) maxIn() int {
	m := l.s.c.srv.opts.MaxMessageSize
	if m < 0 || m > math.MaxInt32*2 {
		return math.MaxInt
	}
	return int(m)
}

// SetCredit grants the peer (the sender) credit for n more deliveries, replacing what
// it had, and tells it in a flow frame.
func (l *Link) SetCredit(n uint32) error {
	return l.flowCredit(func(cur uint32) uint32 { return n }, false)
}

// AddCredit grants the peer (the sender) n more deliveries on top of what it has.
func (l *Link) AddCredit(n uint32) error {
	return l.flowCredit(func(cur uint32) uint32 { return cur + n }, false)
}

// Drain asks the peer (the sender) to send what it can of the credit it has and give
// back the rest.
func (l *Link) Drain() error {
	return l.flowCredit(func(cur uint32) uint32 { return cur }, true)
}

func (l *Link) flowCredit(f func(uint32) uint32, drain bool) error {
	c := l.s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if l.gone || l.detachSent || c.closingLocked() {
		return ErrLinkClosed
	}
	if l.role != wire.RoleReceiver {
		return ErrWrongRole
	}
	l.credit = f(l.credit)
	if limit := l.deliveryCount + l.credit; int32(limit-l.grantedLimit) > 0 {
		l.grantedLimit = limit
	}
	if !l.answered {
		// Called from Attach: the flow follows the server's attach.
		l.flowPending = true
		return nil
	}
	l.drain = drain
	l.s.sendFlowLocked(l)
	l.drain = false
	return nil
}

// Send sends one message (its encoded sections) to the peer, which must have granted
// credit. A settled delivery is sent pre-settled and forgotten; otherwise the handler
// hears the peer's outcome through Disposition. ctx is stored in the Delivery's
// Context. Large messages are split into frames of the peer's max-frame-size, and
// frames wait for the session's window. The max-message-size the peer announced in
// its attach is not checked: qdrouterd 1.19.0 and qpidd 1.39.0 (Qpid Proton) send a
// larger message anyway.
func (l *Link) Send(payload []byte, settled bool, ctx any) (*Delivery, error) {
	c := l.s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if l.gone || l.detachSent || c.closingLocked() || l.s.ended {
		return nil, ErrLinkClosed
	}
	if l.role != wire.RoleSender {
		return nil, ErrWrongRole
	}
	if l.credit == 0 {
		return nil, ErrNoCredit
	}
	if l.sndSettle == wire.SenderSettleModeSettled {
		settled = true
	} else if l.sndSettle == wire.SenderSettleModeUnsettled {
		settled = false
	}
	s := l.s
	d := &Delivery{link: l, ID: s.nextDeliveryID, Payload: payload, Settled: settled, Context: ctx}
	s.nextDeliveryID++
	d.Tag = binary.BigEndian.AppendUint64(make([]byte, 0, 8), l.nextTag)
	l.nextTag++
	l.credit--
	l.deliveryCount++
	if !settled {
		s.outUnsettled[d.ID] = d
		l.unsettled[d.ID] = d
	}
	o := &outgoing{l: l, d: d}
	if len(s.pending) > 0 || !s.frameLocked(o) {
		s.pending = append(s.pending, o)
	}
	return d, nil
}

// Close detaches the link (closed=true) with err, or without an error when err is nil.
// The handler then hears LinkDetached once. Called before the server's attach is
// written (from Handler.Attach, or another goroutine while Attach runs), the detach
// follows the attach, which the link answers with its termini as they are: the way
// an intermediary accepts a link and then detaches it with an error.
func (l *Link) Close(err *wire.Error) {
	c := l.s.c
	c.mu.Lock()
	if l.gone || l.detachSent {
		c.mu.Unlock()
		return
	}
	if !l.answered {
		// Called during Attach (or before its answer is written): the detach is sent
		// right after the answer.
		l.closeOnAnswer, l.closeErr = true, err
		c.mu.Unlock()
		return
	}
	l.detachSent = true
	c.writeLocked(l.s.local, &wire.Detach{Handle: l.local, Closed: true, Error: err}, nil)
	notify := l.accepted
	l.gone = true
	l.partial = nil
	// Transfers still waiting for the session window must not follow the detach.
	l.s.removePendingLocked(l)
	c.mu.Unlock()
	if notify {
		if err == nil {
			err = &wire.Error{Condition: wire.ErrCondDetachForced, Description: "detached by the server"}
		}
		c.h.LinkDetached(l, err)
	}
}

// fail detaches the link with a condition after a protocol error on it.
func (l *Link) fail(cond wire.ErrCond, desc string) {
	l.s.c.log.Warn("detaching link", "name", l.name, "condition", cond, "description", desc)
	l.Close(&wire.Error{Condition: cond, Description: desc})
}

// Delivery is one message on a link, in either direction.
type Delivery struct {
	link    *Link
	inbound bool
	// ID is the delivery-id.
	ID uint32
	// Tag is the delivery-tag.
	Tag []byte
	// Format is the message-format (0 for AMQP messages).
	Format uint32
	// Payload holds the encoded message sections; for a received delivery the handler
	// owns it.
	Payload []byte
	// Settled is true when the sender settled the delivery when sending it.
	Settled bool
	// State is the last state the peer reported (nil before any).
	State wire.DeliveryState
	// Context is free for the handler.
	Context any

	remoteSettled bool
	localSettled  bool
}

// Link returns the delivery's link.
func (d *Delivery) Link() *Link { return d.link }

// Settle settles the delivery with a final state: for a delivery the peer sent, the
// outcome the peer learns (nil for none); for one the server sent, the server forgets
// it. Settling twice does nothing.
func (d *Delivery) Settle(state wire.DeliveryState) {
	d.disposition(state, true)
}

// Update tells the peer a new state of a delivery it sent without settling it (the
// first step of receiver settle mode second).
func (d *Delivery) Update(state wire.DeliveryState) {
	d.disposition(state, false)
}

func (d *Delivery) settleOutbound() { d.disposition(nil, true) }

func (d *Delivery) disposition(state wire.DeliveryState, settled bool) {
	l := d.link
	c := l.s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if d.localSettled || (d.Settled && d.inbound) {
		return
	}
	if settled {
		d.localSettled = true
	}
	s := l.s
	if d.inbound {
		if settled {
			delete(s.inUnsettled, d.ID)
		}
	} else if settled {
		delete(s.outUnsettled, d.ID)
		delete(l.unsettled, d.ID)
		if d.remoteSettled {
			return // the peer has already forgotten it
		}
	}
	if c.closingLocked() || s.ended {
		return
	}
	role := wire.RoleReceiver
	if !d.inbound {
		role = wire.RoleSender
	}
	c.writeLocked(s.local, &wire.Disposition{Role: role, First: d.ID, Settled: settled, State: state}, nil)
}
