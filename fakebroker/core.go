package fakebroker

import (
	"errors"

	"github.com/amqp1kit/amqp1kit/internal/engine"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// The broker's state is guarded by Broker.mu. Engine methods called under it (Send,
// SetCredit, Credit, Settle, SetSourceAddress) only take a connection's lock, and the
// engine never calls back while holding one. Link.Close does call LinkDetached
// synchronously, so links are closed only after mu is released.

// notifyLocked wakes the WaitFor… helpers, if any waits.
func (b *Broker) notifyLocked() {
	if b.waiters > 0 {
		close(b.changed)
		b.changed = make(chan struct{})
	}
}

func (b *Broker) newNodeLocked(name string, kind Kind) *node {
	n := &node{name: name, kind: kind}
	if kind == Queue {
		b.setLimitsLocked(n, name)
	}
	b.nodes[name] = n
	b.notifyLocked()
	return n
}

// refreshSenderLocked tops a sender's credit back up to LinkCredit after every
// delivery (qpidd tops its 500 up after each batch it reads). Credit once granted is
// never taken back: a full queue detaches the sender of a message it has no room for
// (as qpidd does), and StopCredit only stops the topping up.
func (b *Broker) refreshSenderLocked(s *sender) {
	if b.creditStopped || (s.node != nil && s.node.deleted) {
		return
	}
	if target := b.opts.LinkCredit; s.link.Credit() < target {
		_ = s.link.SetCredit(target)
	}
}

func (b *Broker) refreshSendersLocked(n *node) {
	for _, s := range n.senders {
		b.refreshSenderLocked(s)
	}
}

// delivery stores a message a client sent, then settles it with the outcome. On an
// anonymous relay link a message goes to the existing node its to property names; one
// for no node (a queue that no link has made, or that was deleted unused and empty),
// or without a to, is dropped and accepted all the same, as qpidd does.
func (b *Broker) delivery(l *engine.Link, d *engine.Delivery) {
	s, ok := l.Context.(*sender)
	if !ok {
		return
	}
	h, props, scanErr := wire.ScanMessage(d.Payload)
	b.mu.Lock()
	closeWith := b.deliverLocked(s, d, h, props, scanErr)
	b.maybeCompactLocked()
	b.mu.Unlock()
	if closeWith != nil {
		l.Close(closeWith)
	}
}

// deliverLocked does delivery's work; it returns an error to close the sender's link
// with.
func (b *Broker) deliverLocked(s *sender, d *engine.Delivery, h *wire.Header, props *wire.Properties, scanErr error) *wire.Error {
	b.totals.Received++
	if scanErr != nil {
		b.refreshSenderLocked(s)
		b.refuseLocked(nil, d, &wire.Rejected{Error: &wire.Error{Condition: wire.ErrCondDecodeError,
			Description: "fakebroker: cannot read the message's header and properties: " + scanErr.Error()}})
		return nil
	}
	n := s.node
	if n == nil {
		if props != nil {
			n = b.nodes[props.To]
		}
		if n == nil || n.retired {
			b.totals.Dropped++
			b.refreshSenderLocked(s)
			if !d.Settled {
				d.Settle(&wire.Accepted{})
			}
			return nil
		}
	}
	n.counts.Received++
	if n.deleted {
		// Deleted under the sender (a dynamic node's lifetime-policy
		// delete-on-close): qpidd detaches it on its next message.
		return &wire.Error{Condition: wire.ErrCondResourceDeleted, Description: " Queue " + n.name + " has been deleted"}
	}
	m := newMessage(d.Payload, h)
	m.durable = b.opts.JournalAll || m.persistent
	m.expires = b.expiry(h, props)
	if h != nil && h.TTL > 0 {
		m.ttlAt = b.opts.Now().UnixNano() + int64(h.TTL)*1e6
	}
	var in *ingress
	if !d.Settled {
		in = &ingress{d: d}
		m.ingress = in
	}
	full, err := b.storeLocked(n, m)
	if full == nil {
		b.refreshSenderLocked(s) // the flow before the disposition, as qpidd sends them
	}
	switch {
	case full != nil:
		// qpidd: the message is not stored (nor answered), no credit is topped up,
		// and the link is detached.
		if in != nil {
			in.refused = true
		}
		if n != full {
			n.counts.Refused++ // a topic; its subscription queue counted it too
		}
		b.totals.Refused++
		return full.limitError()
	case err != nil:
		b.opts.Logger.Error("fakebroker: storing a message failed; released", "node", n.name, "err", err)
		b.refuseLocked(n, d, &wire.Released{})
	case in != nil && in.pending == 0:
		d.Settle(&wire.Accepted{})
	}
	return nil
}

// refuseLocked answers a message the broker does not store: dropped when the sender
// pre-settled it, otherwise settled with outcome.
func (b *Broker) refuseLocked(n *node, d *engine.Delivery, outcome wire.DeliveryState) {
	if d.Settled {
		b.totals.Dropped++
		if n != nil {
			n.counts.Dropped++
		}
		return
	}
	b.totals.Refused++
	if n != nil {
		n.counts.Refused++
	}
	d.Settle(outcome)
}

// expiry computes when a message expires, from the broker's clock: its header's ttl,
// and its absolute-expiry-time when Options.AbsoluteExpiry says so.
func (b *Broker) expiry(h *wire.Header, p *wire.Properties) int64 {
	var exp int64
	if h != nil && h.TTL > 0 {
		exp = b.opts.Now().UnixNano() + int64(h.TTL)*1e6
	}
	if b.opts.AbsoluteExpiry && p != nil && !p.AbsoluteExpiryTime.IsZero() {
		if a := p.AbsoluteExpiryTime.UnixNano(); exp == 0 || a < exp {
			exp = max(a, 1)
		}
	}
	return exp
}

// storeLocked stores m in a queue, or a copy of it in each subscription queue of a
// topic, journals it if durable, and hands it to a consumer that has credit. A queue
// that has no room for it within its limits gets no copy (the others of a topic do,
// as qpidd's exchanges route): the first such queue is returned.
func (b *Broker) storeLocked(n *node, m *message) (full *node, err error) {
	targets := []*node{n}
	if n.kind == Topic {
		targets = n.subs
		if len(targets) == 0 {
			// No subscriber: the message is gone, as in qpidd.
			n.counts.Dropped++
			b.totals.Dropped++
			return nil, nil
		}
	}
	stored, in := 0, m.ingress
	for _, t := range targets {
		if t.full(m.size) {
			b.expireLocked(t)
			if t.full(m.size) {
				if full == nil {
					full = t
				}
				t.counts.Refused++
				continue
			}
		}
		cp := m
		if stored > 0 {
			cp = m.copyFor()
			cp.ingress = in
		}
		stored++
		b.seq++
		cp.seq = b.seq
		if cp.durable && b.journal != nil && !t.temporary {
			jm := journalMsg{seq: cp.seq, node: t.name, expires: cp.expires, count: cp.count, payload: cp.payload}
			if err := b.journal.enqueue(jm); err != nil {
				return full, err
			}
			cp.journaled = true
		}
		t.push(cp)
		t.enqueued(cp)
		if !cp.held {
			cp.ingress = nil
		}
		t.counts.Enqueued++
		b.totals.Enqueued++
		b.pumpLocked(t)
	}
	b.notifyLocked()
	return full, nil
}

// pumpLocked sends available messages of q to its consumers that have credit, in
// turn.
func (b *Broker) pumpLocked(q *node) {
	if len(q.consumers) == 0 || q.available() == 0 {
		return
	}
	b.browseLocked(q) // browsers see a message before a consumer takes it (browse.go)
	var now int64
	if q.expiring > 0 {
		now = b.opts.Now().UnixNano()
	}
	for q.available() > 0 {
		k := len(q.consumers)
		sent := false
		for i := 0; i < k && !sent; i++ {
			idx := (q.rr + i) % k
			co := q.consumers[idx]
			if co.gone || co.browse || co.link.Credit() == 0 {
				continue
			}
			if !b.stalled.Writable(co.link.Conn(), q) {
				continue // held back until the consumer reads (handler.Writable)
			}
			m := b.takeLocked(q, co, now)
			if m == nil {
				continue
			}
			if b.sendLocked(co, m) {
				q.rr = idx + 1
				sent = true
			}
		}
		if !sent {
			return
		}
	}
}

// takeLocked removes the first available message co may have, dropping expired
// messages on the way.
func (b *Broker) takeLocked(q *node, co *consumer, now int64) *message {
	for i := q.head; i < len(q.avail); {
		m := q.avail[i]
		expired := now != 0 && m.expires != 0 && m.expires <= now
		if !expired && m.avoids(co) {
			i++
			continue
		}
		wasHead := i == q.head
		q.removeAt(i)
		if wasHead {
			i = q.head
		}
		if expired {
			b.expiredLocked(q, m)
			continue
		}
		return m
	}
	return nil
}

// sendLocked sends m to co; on failure m is available again.
func (b *Broker) sendLocked(co *consumer, m *message) bool {
	q := co.node
	var now int64
	if m.ttlAt != 0 {
		now = b.opts.Now().UnixNano()
	}
	d, err := co.link.Send(m.wireBytes(now), co.presettle, m)
	if err != nil {
		if !errors.Is(err, engine.ErrNoCredit) {
			co.gone = true
		}
		q.putBack(m)
		return false
	}
	q.counts.Delivered++
	b.totals.Delivered++
	if m.delivered {
		q.counts.Redelivered++
		b.totals.Redelivered++
	}
	m.delivered = true
	if d.Settled {
		// Sent pre-settled (the consumer asked for it, or a subscription's copy): at
		// most once.
		q.counts.Acked++
		b.totals.Acked++
		b.dequeueLocked(q, m)
		return true
	}
	m.holder = co
	co.unacked[m] = struct{}{}
	q.acquired++
	return true
}

// dequeueLocked forgets a message that leaves its queue for good.
func (b *Broker) dequeueLocked(q *node, m *message) {
	q.forget(m)
	if m.journaled && b.journal != nil {
		b.journal.remove(m.seq)
	}
	b.maybeRetireLocked(q)
}

// maybeCompactLocked rewrites the journal once dead records outnumber live ones by
// far. It runs only where every queue is consistent (never in the middle of a batch
// of removals), since the rewrite reads the queues.
func (b *Broker) maybeCompactLocked() {
	if b.journal != nil && b.journal.wantsCompaction() {
		b.compactLocked()
	}
}

func (b *Broker) expiredLocked(q *node, m *message) {
	q.counts.Expired++
	b.totals.Expired++
	b.dequeueLocked(q, m)
}

// expireLocked drops the expired available messages of q.
func (b *Broker) expireLocked(q *node) {
	if q.expiring == 0 {
		return
	}
	now := b.opts.Now().UnixNano()
	kept := q.avail[:q.head]
	gone := 0
	for _, m := range q.avail[q.head:] {
		if m.expires != 0 && m.expires <= now {
			b.expiredLocked(q, m)
			gone++
			continue
		}
		kept = append(kept, m)
	}
	if gone == 0 {
		return
	}
	clear(q.avail[len(kept):])
	q.avail = kept
	b.maybeRetireLocked(q)
	b.maybeCompactLocked()
	b.notifyLocked()
}

// raiseCountLocked adds one to a message's delivery-count.
func (b *Broker) raiseCountLocked(m *message) {
	m.count++
	if m.journaled && b.journal != nil {
		b.journal.setCount(m.seq, m.count)
	}
}

// credit is called when a consumer changed its credit.
func (b *Broker) credit(l *engine.Link) {
	co, ok := l.Context.(*consumer)
	if !ok {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pumpLocked(co.node)
	b.maybeCompactLocked()
}

// disposition applies a consumer's outcome to a message it holds.
func (b *Broker) disposition(l *engine.Link, d *engine.Delivery, state wire.DeliveryState, settled bool) {
	co, ok := l.Context.(*consumer)
	if !ok {
		return
	}
	m, ok := d.Context.(*message)
	if !ok {
		return
	}
	if _, final := state.(wire.Outcome); !final && !settled {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if m.holder != co {
		return
	}
	q := co.node
	delete(co.unacked, m)
	m.holder = nil
	q.acquired--
	switch st := state.(type) {
	case *wire.Released:
		// Back in its place, delivery-count unchanged (qpidd).
		q.counts.Released++
		b.totals.Released++
		q.putBack(m)
	case *wire.Modified:
		q.counts.Modified++
		b.totals.Modified++
		if st.DeliveryFailed {
			b.raiseCountLocked(m)
		}
		if st.UndeliverableHere {
			m.avoid = append(m.avoid, co)
		}
		if len(st.MessageAnnotations) > 0 {
			m.mergeAnnotations(st.MessageAnnotations)
		}
		q.putBack(m)
	case *wire.Rejected:
		q.counts.Rejected++
		b.totals.Rejected++
		b.deadLetterLocked(q, m)
		b.dequeueLocked(q, m)
	default:
		// Accepted, or settled without an outcome.
		q.counts.Acked++
		b.totals.Acked++
		b.dequeueLocked(q, m)
	}
	b.pumpLocked(q)
	b.maybeCompactLocked()
	b.notifyLocked()
}

// deadLetterLocked moves a rejected message to the dead-letter queue, if there is
// one.
func (b *Broker) deadLetterLocked(q *node, m *message) {
	name := b.opts.DeadLetterQueue
	if name == "" || name == q.name {
		return
	}
	dlq := b.nodes[name]
	if dlq == nil {
		dlq = b.newNodeLocked(name, Queue)
	}
	if dlq.kind != Queue {
		b.opts.Logger.Warn("fakebroker: the dead-letter queue is a topic; rejected message dropped", "node", name)
		dlq.counts.Dropped++
		b.totals.Dropped++
		return
	}
	dm := m.copyFor()
	if full, err := b.storeLocked(dlq, dm); full != nil || err != nil {
		dlq.counts.Dropped++
		b.totals.Dropped++
		return
	}
	q.counts.DeadLettered++
	b.totals.DeadLettered++
}

// linkDetached cleans up after a link that went away: a consumer's unsettled
// messages are available again (delivery-count raised: they may have been seen), and
// the node's lifetime applies (see lifetime).
func (b *Broker) linkDetached(l *engine.Link) {
	var closing []*engine.Link
	byClient := l.DetachedByPeer()
	b.mu.Lock()
	switch x := l.Context.(type) {
	case *consumer:
		q := x.node
		x.gone = true
		q.consumers = removeConsumer(q.consumers, x)
		for m := range x.unacked {
			m.holder = nil
			q.acquired--
			b.raiseCountLocked(m)
			q.putBack(m)
		}
		x.unacked = nil
		if closing = b.linkLeftLocked(q, l, byClient); !q.deleted {
			b.pumpLocked(q)
		}
	case *sender:
		if n := x.node; n != nil {
			n.senders = removeSender(n.senders, x)
			closing = b.linkLeftLocked(n, l, byClient)
		}
	}
	b.maybeCompactLocked()
	b.notifyLocked()
	b.mu.Unlock()
	for _, cl := range closing {
		// qpidd's words to the consumers of a queue deleted under them.
		name := cl.Context.(*consumer).node.name
		cl.Close(&wire.Error{Condition: wire.ErrCondResourceDeleted, Description: "resource-deleted: Queue " + name + " has been deleted."})
	}
}

// deleteNodeLocked deletes a temporary node: its messages are dropped, and the
// other consumers attached to it are returned to be closed.
func (b *Broker) deleteNodeLocked(n *node) []*engine.Link {
	if b.nodes[n.name] == n {
		delete(b.nodes, n.name)
	}
	n.deleted = true
	var closing []*engine.Link
	drop := func(m *message) {
		n.counts.Dropped++
		b.totals.Dropped++
		b.dequeueLocked(n, m)
	}
	for _, m := range n.avail[n.head:] {
		drop(m)
	}
	n.avail, n.head = nil, 0
	for _, co := range n.consumers {
		co.gone = true
		for m := range co.unacked {
			m.holder = nil
			drop(m)
		}
		co.unacked = map[*message]struct{}{}
		if co.link != n.owner {
			closing = append(closing, co.link)
		}
	}
	n.acquired = 0
	n.consumers = nil
	// Senders stay attached until they send (qpidd detaches a sender to a deleted
	// queue then: see delivery).
	n.senders = nil
	if t := n.topic; t != nil {
		for i, sub := range t.subs {
			if sub == n {
				t.subs = append(t.subs[:i:i], t.subs[i+1:]...)
				break
			}
		}
		b.refreshSendersLocked(t)
	}
	return closing
}

func removeConsumer(s []*consumer, x *consumer) []*consumer {
	for i, c := range s {
		if c == x {
			return append(s[:i:i], s[i+1:]...)
		}
	}
	return s
}

func removeSender(s []*sender, x *sender) []*sender {
	for i, c := range s {
		if c == x {
			return append(s[:i:i], s[i+1:]...)
		}
	}
	return s
}

// compactLocked rewrites the journal with the live journaled messages.
func (b *Broker) compactLocked() {
	var msgs []journalMsg
	for _, n := range b.nodes {
		if n.kind != Queue {
			continue
		}
		for _, m := range n.messages() {
			if m.journaled {
				msgs = append(msgs, journalMsg{seq: m.seq, node: n.name, expires: m.expires, count: m.count, payload: m.payload})
			}
		}
	}
	if err := b.journal.rewrite(msgs); err != nil {
		b.opts.Logger.Warn("fakebroker: journal: compaction failed; appending to it as it is", "err", err)
	}
}
