package engine

import (
	"fmt"
	"slices"

	"github.com/amqp1kit/amqp1kit/internal/wire"
)

const (
	maxWindow = 1<<31 - 1
	maxHandle = 1<<32 - 1
)

// session is one AMQP session of a connection. Its fields are guarded by the
// connection's mutex.
type session struct {
	c                 *Conn
	local, remote     uint16
	nextIncomingID    uint32 // next transfer-id expected from the peer
	incomingWindow    uint32 // transfer frames the peer may still send
	nextOutgoingID    uint32 // next transfer-id the server sends
	remoteInWindow    uint32 // transfer frames the peer still accepts from the server
	nextDeliveryID    uint32 // next delivery-id the server assigns
	byRemote          map[uint32]*Link
	byLocal           map[uint32]*Link
	outUnsettled      map[uint32]*Delivery // sent by the server, not settled by the peer
	inUnsettled       map[uint32]*Delivery // sent by the peer, not settled by the server
	pending           []*outgoing          // transfers waiting for the peer's window
	handleHint        uint32               // no local handle below it is free
	ended             bool                 // end sent by the server
	incomingWindowMax uint32
}

// outgoing is a delivery still (partly) to be framed.
type outgoing struct {
	l   *Link
	d   *Delivery
	off int // payload bytes already framed
}

// lowestFree returns the lowest number not in used, searching from *hint (no
// number below it is free, so many allocations stay linear), and moves the hint past
// it. Whoever frees a number lowers the hint to it.
func lowestFree[K ~uint16 | ~uint32, V any](used map[K]V, hint *K) K {
	n := *hint
	for {
		if _, taken := used[n]; !taken {
			break
		}
		n++
	}
	*hint = n + 1
	return n
}

func newSession(c *Conn, local, remote uint16, b *wire.Begin) *session {
	w := c.srv.opts.SessionWindow
	return &session{
		c:                 c,
		local:             local,
		remote:            remote,
		nextIncomingID:    b.NextOutgoingID,
		incomingWindow:    w,
		incomingWindowMax: w,
		remoteInWindow:    b.IncomingWindow,
		byRemote:          map[uint32]*Link{},
		byLocal:           map[uint32]*Link{},
		outUnsettled:      map[uint32]*Delivery{},
		inUnsettled:       map[uint32]*Delivery{},
	}
}

// sessionError ends the session with an error (part 2.7.7) and detaches its links.
func (s *session) sessionError(cond wire.ErrCond, desc string) error {
	c := s.c
	c.log.Warn("ending session", "channel", s.remote, "condition", cond, "description", desc)
	c.mu.Lock()
	links := s.detachAllLocked()
	if !s.ended {
		s.ended = true
		c.writeLocked(s.local, &wire.End{Error: &wire.Error{Condition: cond, Description: desc}}, nil)
	}
	c.mu.Unlock()
	for _, l := range links {
		c.h.LinkDetached(l, &wire.Error{Condition: cond, Description: desc})
	}
	return nil
}

// detachAllLocked forgets every link of the session and returns those whose handler
// must hear LinkDetached.
func (s *session) detachAllLocked() []*Link {
	var out []*Link
	for _, l := range s.byRemote {
		if !l.gone {
			l.gone = true
			if l.accepted {
				out = append(out, l)
			}
		}
	}
	for _, l := range s.byLocal {
		if !l.gone {
			l.gone = true
			if l.accepted {
				out = append(out, l)
			}
		}
	}
	s.byRemote = map[uint32]*Link{}
	s.byLocal = map[uint32]*Link{}
	s.handleHint = 0
	s.pending = nil
	return out
}

func (s *session) handle(p wire.Performative, payload []byte) error {
	if _, isEnd := p.(*wire.End); !isEnd {
		s.c.mu.Lock()
		ended := s.ended
		s.c.mu.Unlock()
		if ended {
			// The server has ended the session: frames the peer sent before it read
			// the end are moot, and nothing may be sent on the channel but nothing.
			return nil
		}
	}
	switch p := p.(type) {
	case *wire.Attach:
		return s.handleAttach(p)
	case *wire.Flow:
		return s.handleFlow(p)
	case *wire.Transfer:
		return s.handleTransfer(p, payload)
	case *wire.Disposition:
		return s.handleDisposition(p)
	case *wire.Detach:
		return s.handleDetach(p)
	case *wire.End:
		return s.handleEnd(p)
	}
	return fmt.Errorf("unexpected %T", p)
}

func (s *session) handleEnd(e *wire.End) error {
	c := s.c
	if e.Error != nil {
		c.log.Info("peer ended session with error", "channel", s.remote, "condition", e.Error.Condition, "description", e.Error.Description)
	}
	c.mu.Lock()
	links := s.detachAllLocked()
	if !s.ended {
		s.ended = true
		c.writeLocked(s.local, &wire.End{}, nil)
	}
	delete(c.sessions, s.remote)
	delete(c.localChans, s.local)
	c.chanHint = min(c.chanHint, s.local)
	c.mu.Unlock()
	detachErr := e.Error
	if detachErr == nil {
		detachErr = &wire.Error{Condition: wire.ErrCondDetachForced, Description: "session ended"}
	}
	for _, l := range links {
		c.h.LinkDetached(l, detachErr)
	}
	return nil
}

func (s *session) handleFlow(f *wire.Flow) error {
	c := s.c
	c.mu.Lock()
	if s.ended {
		c.mu.Unlock()
		return nil
	}
	// Session flow state (part 2.5.6): the peer's window as seen from the server.
	nextIn := uint32(0)
	if f.NextIncomingID != nil {
		nextIn = *f.NextIncomingID
	}
	s.remoteInWindow = nextIn + f.IncomingWindow - s.nextOutgoingID
	s.flushPendingLocked()
	ignoreEcho := c.srv.opts.IgnoreEcho
	if f.Handle == nil {
		if f.Echo && !ignoreEcho {
			s.sendFlowLocked(nil)
		}
		c.mu.Unlock()
		return nil
	}
	l := s.byRemote[*f.Handle]
	if l == nil {
		c.mu.Unlock()
		return s.sessionError(wire.ErrCondUnattachedHandle, fmt.Sprintf("flow for handle %d, which is not attached", *f.Handle))
	}
	if l.gone || l.detachSent {
		// The server detached (or refused) the link and the peer has not answered
		// yet: the flow crossed the detach and is moot.
		c.mu.Unlock()
		return nil
	}
	if l.role == wire.RoleSender {
		// The peer is the receiver: its credit, relative to its view of the
		// delivery-count (part 2.6.7).
		if f.LinkCredit != nil {
			dc := l.deliveryCount
			if f.DeliveryCount != nil {
				dc = *f.DeliveryCount
			}
			credit := int64(dc) + int64(*f.LinkCredit) - int64(l.deliveryCount)
			// Serial-number arithmetic: a receiver ahead of the sender is an error,
			// treated as no credit.
			if credit < 0 || credit > 1<<31 {
				credit = 0
			}
			l.credit = uint32(credit)
		}
		l.drain = f.Drain
		echo := f.Echo && !ignoreEcho
		c.mu.Unlock()
		c.h.Credit(l)
		c.mu.Lock()
		if l.gone {
			c.mu.Unlock()
			return nil
		}
		if l.drain && l.credit > 0 {
			// Nothing more to send: spend the credit and tell the peer (the echo of a
			// drain), as part 2.6.7 requires.
			l.deliveryCount += l.credit
			l.credit = 0
			s.sendFlowLocked(l)
		} else if echo {
			// A drain with no credit left has nothing to spend, and Qpid Proton (so
			// qdrouterd and qpidd) sends nothing back: neither does the engine.
			s.sendFlowLocked(l)
		}
		if l.drain && l.credit == 0 {
			l.drain = false
		}
		c.mu.Unlock()
		return nil
	}
	// The peer is the sender: it reports its delivery-count (after a drain it has
	// spent the credit it could not use) and available.
	if dc := f.DeliveryCount; dc != nil && int32(*dc-l.deliveryCount) > 0 && int32(l.grantedLimit-*dc) >= 0 {
		// Only forward and within what was granted: a delivery-count moved back
		// would hand the sender its spent credit again.
		spent := *dc - l.deliveryCount
		if spent >= l.credit {
			l.credit = 0
		} else {
			l.credit -= spent
		}
		l.deliveryCount = *dc
	}
	if f.Available != nil {
		l.available = *f.Available
	}
	if f.Echo && !ignoreEcho {
		s.sendFlowLocked(l)
	}
	c.mu.Unlock()
	c.h.Credit(l)
	return nil
}

// sendFlowLocked sends the session's flow state and, with l, the link's. A link's
// flow counts the deliveries sent on it, so while some wait for the peer's session
// window the flow waits behind them (flushPendingLocked sends it).
func (s *session) sendFlowLocked(l *Link) {
	if l != nil && s.hasPendingLocked(l) {
		l.flowDeferred = true
		l.flowDeferredDrain = l.flowDeferredDrain || l.drain
		return
	}
	next := s.nextIncomingID
	f := &wire.Flow{
		NextIncomingID: &next,
		IncomingWindow: s.incomingWindow,
		NextOutgoingID: s.nextOutgoingID,
		OutgoingWindow: maxWindow,
	}
	if l != nil {
		h, dc, cr := l.local, l.deliveryCount, l.credit
		f.Handle, f.DeliveryCount, f.LinkCredit = &h, &dc, &cr
		f.Drain = l.drain || l.flowDeferredDrain
		l.flowDeferred, l.flowDeferredDrain = false, false
		if l.role == wire.RoleSender && !s.c.srv.opts.OmitAvailable {
			av := uint32(0)
			f.Available = &av
		}
	}
	s.c.writeLocked(s.local, f, nil)
}

func (s *session) handleTransfer(t *wire.Transfer, payload []byte) error {
	c := s.c
	c.mu.Lock()
	if s.ended {
		c.mu.Unlock()
		return nil
	}
	if s.incomingWindow == 0 {
		c.mu.Unlock()
		return s.sessionError(wire.ErrCondWindowViolation, "transfer beyond the session's incoming window")
	}
	if s.incomingWindowMax < maxWindow { // the largest window stays as it is, as Proton's
		s.incomingWindow--
	}
	s.nextIncomingID++
	if s.incomingWindow <= s.incomingWindowMax/2 { // <=: a window of 1 must reopen too
		s.incomingWindow = s.incomingWindowMax
		s.sendFlowLocked(nil)
	}
	l := s.byRemote[t.Handle]
	if l == nil {
		c.mu.Unlock()
		return s.sessionError(wire.ErrCondUnattachedHandle, fmt.Sprintf("transfer on handle %d, which is not attached", t.Handle))
	}
	if l.gone || l.detachSent {
		c.mu.Unlock()
		return nil // the link is going away: the frame is moot
	}
	if l.role != wire.RoleReceiver {
		c.mu.Unlock()
		l.fail(wire.ErrCondIllegalState, "transfer on a link where the client is the receiver")
		return nil
	}
	d := l.partial
	if d == nil {
		if t.DeliveryID == nil {
			c.mu.Unlock()
			l.fail(wire.ErrCondInvalidField, "first transfer of a delivery without delivery-id")
			return nil
		}
		// A sender may still use credit the server has since reduced (the flow that
		// reduced it may be in flight): only deliveries past the highest limit ever
		// granted break the rules of part 2.6.7.
		if int32(l.deliveryCount-l.grantedLimit) >= 0 {
			c.mu.Unlock()
			l.fail(wire.ErrCondTransferLimitExceeded, "transfer without link credit")
			return nil
		}
		if l.credit > 0 {
			l.credit--
		}
		l.deliveryCount++
		d = &Delivery{link: l, ID: *t.DeliveryID, Tag: t.DeliveryTag, inbound: true}
		if t.MessageFormat != nil {
			d.Format = *t.MessageFormat
		}
		d.Payload = payload
		l.partial = d
	} else {
		if len(d.Payload)+len(payload) > l.maxIn() {
			l.partial = nil
			c.mu.Unlock()
			l.fail(wire.ErrCondMessageSizeExceeded, fmt.Sprintf("message larger than max-message-size %d", l.maxIn()))
			return nil
		}
		d.Payload = append(d.Payload, payload...)
	}
	if len(d.Payload) > l.maxIn() {
		l.partial = nil
		c.mu.Unlock()
		l.fail(wire.ErrCondMessageSizeExceeded, fmt.Sprintf("message larger than max-message-size %d", l.maxIn()))
		return nil
	}
	if t.Settled {
		d.Settled = true
	}
	if t.Aborted {
		l.partial = nil
		c.mu.Unlock()
		if ah, ok := c.h.(AbortHandler); ok {
			ah.Aborted(l)
		}
		return nil
	}
	if t.More {
		// A multi-frame delivery: the first frame's slice is the frame buffer; give
		// the delivery room to grow without keeping the others' bytes.
		c.mu.Unlock()
		return nil
	}
	l.partial = nil
	if !d.Settled {
		s.inUnsettled[d.ID] = d
	}
	c.mu.Unlock()
	c.h.Delivery(l, d)
	return nil
}

func (s *session) handleDisposition(dp *wire.Disposition) error {
	c := s.c
	last := dp.First
	if dp.Last != nil {
		last = *dp.Last
	}
	table := s.outUnsettled // the peer is the receiver: deliveries the server sent
	if dp.Role == wire.RoleSender {
		table = s.inUnsettled
	}
	type change struct {
		l *Link
		d *Delivery
	}
	var changes []change
	c.mu.Lock()
	span := last - dp.First // serial arithmetic: wraps like delivery-ids do
	visit := func(id uint32, d *Delivery) {
		d.State = dp.State
		if dp.Settled {
			d.remoteSettled = true
			delete(table, id)
			if !d.inbound {
				delete(d.link.unsettled, id)
			}
		}
		changes = append(changes, change{d.link, d})
	}
	if uint64(span) < uint64(len(table)) {
		for i := uint32(0); ; i++ {
			if d, ok := table[dp.First+i]; ok {
				visit(dp.First+i, d)
			}
			if i == span {
				break
			}
		}
	} else {
		for id, d := range table {
			if id-dp.First <= span {
				visit(id, d)
			}
		}
	}
	c.mu.Unlock()
	for _, ch := range changes {
		c.h.Disposition(ch.l, ch.d, dp.State, dp.Settled)
	}
	// In rcv-settle-mode second the receiver waits for the sender to settle after it
	// sent its outcome: the engine settles deliveries it sent once they are final.
	if dp.Role == wire.RoleReceiver && !dp.Settled {
		if _, final := dp.State.(wire.Outcome); final {
			for _, ch := range changes {
				ch.d.settleOutbound()
			}
		}
	}
	return nil
}

func (s *session) handleAttach(a *wire.Attach) error {
	c := s.c
	c.mu.Lock()
	if old, dup := s.byRemote[a.Handle]; dup && !old.gone {
		c.mu.Unlock()
		return s.sessionError(wire.ErrCondHandleInUse, fmt.Sprintf("attach on handle %d, which is in use", a.Handle))
	}
	local := lowestFree(s.byLocal, &s.handleHint)
	l := &Link{
		s:         s,
		name:      a.Name,
		local:     local,
		remote:    a.Handle,
		role:      !a.Role,
		source:    a.Source,
		target:    a.Target,
		sndSettle: a.SndSettleMode,
		rcvSettle: a.RcvSettleMode,
		unsettled: map[uint32]*Delivery{},
	}
	if a.Role == wire.RoleSender && a.InitialDeliveryCount != nil {
		l.deliveryCount = *a.InitialDeliveryCount
	}
	l.grantedLimit = l.deliveryCount
	s.byRemote[a.Handle] = l
	s.byLocal[local] = l
	c.mu.Unlock()

	var refusal error
	if a.Coordinator != nil {
		refusal = &wire.Error{Condition: wire.ErrCondNotImplemented, Description: "transactions are not supported"}
	} else {
		refusal = c.h.Attach(l)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	reply := &wire.Attach{
		Name:          l.name,
		Handle:        l.local,
		Role:          l.role,
		SndSettleMode: l.sndSettle,
		RcvSettleMode: l.rcvSettle,
		Source:        l.source,
		Target:        l.target,
	}
	// Qpid Proton sets initial-delivery-count in every attach, whatever the role.
	zero := uint32(0)
	reply.InitialDeliveryCount = &zero
	if m := c.srv.opts.MaxMessageSize; m > 0 && l.role == wire.RoleReceiver && c.srv.opts.AnnounceMaxMessageSize {
		reply.MaxMessageSize = uint64(m)
	}
	if refusal != nil {
		// Part 2.6.3: refuse with a null terminus on the server's side, then detach.
		if l.role == wire.RoleSender {
			reply.Source = nil
		} else {
			reply.Target = nil
		}
		l.answered = true
		c.writeLocked(s.local, reply, nil)
		we := toWireError(refusal)
		c.log.Info("refusing link", "name", l.name, "condition", we.Condition, "description", we.Description)
		l.detachSent = true
		c.writeLocked(s.local, &wire.Detach{Handle: l.local, Closed: true, Error: we}, nil)
		return nil
	}
	// An accepted link has both termini: a client's null target on a sending link
	// (anonymous relay) is answered with an empty one, as Proton answers it, since a
	// null terminus in the answer means a refusal (part 2.6.3).
	if reply.Source == nil {
		reply.Source = &wire.Source{}
	}
	if reply.Target == nil {
		reply.Target = &wire.Target{}
	}
	reply.Source, reply.Target = withTerminusDefaults(reply.Source, reply.Target)
	l.accepted = true
	l.answered = true
	c.writeLocked(s.local, reply, nil)
	if l.closeOnAnswer {
		// The handler closed the link before its attach was answered (Link.Close):
		// the detach follows the answer, never overtakes it.
		c.mu.Unlock()
		l.Close(l.closeErr)
		c.mu.Lock()
		return nil
	}
	if l.flowPending {
		l.flowPending = false
		s.sendFlowLocked(l)
	}
	return nil
}

// withTerminusDefaults returns copies of the termini of an answering attach with the
// expiry policy spelled out when it was left to its default, as Qpid Proton writes it.
func withTerminusDefaults(src *wire.Source, tgt *wire.Target) (*wire.Source, *wire.Target) {
	if src != nil && src.ExpiryPolicy == "" {
		c := *src
		c.ExpiryPolicy = wire.TerminusExpiryPolicySessionEnd
		src = &c
	}
	if tgt != nil && tgt.ExpiryPolicy == "" {
		c := *tgt
		c.ExpiryPolicy = wire.TerminusExpiryPolicySessionEnd
		tgt = &c
	}
	return src, tgt
}

func (s *session) handleDetach(dt *wire.Detach) error {
	c := s.c
	c.mu.Lock()
	l := s.byRemote[dt.Handle]
	if l == nil {
		c.mu.Unlock()
		return s.sessionError(wire.ErrCondUnattachedHandle, fmt.Sprintf("detach of handle %d, which is not attached", dt.Handle))
	}
	delete(s.byRemote, dt.Handle)
	delete(s.byLocal, l.local)
	s.handleHint = min(s.handleHint, l.local)
	l.peerDetached, l.peerClosed = true, dt.Closed
	// The answer is written once the handler has heard the link go (below): a client
	// that sees its detach answered finds the intermediary past it (a queue retired,
	// a subscription freed), as it does with qpidd and qdrouterd.
	answer := !l.detachSent
	if answer {
		if c.srv.opts.SettleOnDetach {
			s.settleSentLocked(l)
		}
		l.detachSent = true
	}
	notify := l.accepted && !l.gone
	l.gone = true
	l.partial = nil
	for id, d := range s.inUnsettled {
		if d.link == l {
			delete(s.inUnsettled, id)
		}
	}
	for id := range l.unsettled {
		delete(s.outUnsettled, id)
	}
	s.removePendingLocked(l)
	c.mu.Unlock()
	if notify {
		err := dt.Error
		if err == nil {
			err = &wire.Error{Condition: wire.ErrCondDetachForced, Description: "detached by the client"}
		}
		c.h.LinkDetached(l, err)
	}
	if answer {
		c.mu.Lock()
		c.writeLocked(s.local, &wire.Detach{Handle: l.local, Closed: dt.Closed}, nil)
		c.mu.Unlock()
	}
	return nil
}

// settleSentLocked settles the deliveries the server sent whole on l that the peer
// has not settled, one disposition each in delivery-id order, as Qpid Proton does when
// its application frees a link the peer detached.
func (s *session) settleSentLocked(l *Link) {
	pending := map[*Delivery]bool{}
	for _, o := range s.pending {
		if o.l == l {
			pending[o.d] = true
		}
	}
	ids := make([]uint32, 0, len(l.unsettled))
	for id, d := range l.unsettled {
		if !pending[d] && !d.remoteSettled {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(a, b uint32) int { return int(int32(a - b)) })
	for _, id := range ids {
		d := l.unsettled[id]
		d.localSettled = true
		s.c.writeLocked(s.local, &wire.Disposition{Role: wire.RoleSender, First: id, Settled: true}, nil)
	}
}

func (s *session) hasPendingLocked(l *Link) bool {
	for _, o := range s.pending {
		if o.l == l {
			return true
		}
	}
	return false
}

func (s *session) removePendingLocked(l *Link) {
	kept := s.pending[:0]
	for _, o := range s.pending {
		if o.l != l {
			kept = append(kept, o)
		}
	}
	s.pending = kept
}

// flushPendingLocked frames queued deliveries while the peer's window allows.
func (s *session) flushPendingLocked() {
	for len(s.pending) > 0 && s.remoteInWindow > 0 {
		o := s.pending[0]
		if !s.frameLocked(o) {
			return
		}
		s.pending = s.pending[1:]
		if o.l.flowDeferred && !s.hasPendingLocked(o.l) {
			s.sendFlowLocked(o.l)
		}
	}
	if len(s.pending) == 0 {
		s.pending = nil
	}
}

// frameLocked writes transfer frames of o while the peer's window allows and reports
// whether the delivery is completely sent.
func (s *session) frameLocked(o *outgoing) bool {
	c := s.c
	l, d := o.l, o.d
	for s.remoteInWindow > 0 {
		// Qpid Proton repeats the delivery-id and tag on every frame of a delivery;
		// the message-format goes on the first.
		id := d.ID
		t := &wire.Transfer{Handle: l.local, DeliveryID: &id, DeliveryTag: d.Tag, Settled: d.Settled}
		if o.off == 0 {
			format := d.Format
			t.MessageFormat = &format
		}
		room := s.transferRoom(t)
		rest := d.Payload[o.off:]
		if len(rest) > room {
			t.More = true
			rest = rest[:room]
		}
		c.writeLocked(s.local, t, rest)
		s.remoteInWindow--
		s.nextOutgoingID++
		o.off += len(rest)
		if !t.More {
			return true
		}
	}
	return false
}

// transferRoom returns how many payload bytes fit in one frame after t (encoded with
// more=true, the larger of the two encodings).
func (s *session) transferRoom(t *wire.Transfer) int {
	more := t.More
	t.More = true
	var scratch [64]byte
	enc, _ := t.AppendTo(scratch[:0])
	t.More = more
	return int(s.c.peerMaxFrame) - wire.FrameHeaderSize - len(enc)
}
