package fakebroker

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/amqp1kit/amqp1kit/internal/engine"
	"github.com/amqp1kit/amqp1kit/internal/fakeutil"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// Counts are the message counts of a node (or of the whole broker).
type Counts struct {
	// Received counts messages senders sent (for the whole broker, refused ones
	// included).
	Received uint64
	// Enqueued counts messages stored in queues; a topic's copies count on its
	// subscription queues and in the broker's total.
	Enqueued uint64
	// Refused counts messages not stored because a queue had no room within its
	// limits (their sender was detached; for a topic, on the full subscription queue
	// and the topic), and unsettled messages not stored because the journal could not
	// write (released) or because they could not be read (rejected); pre-settled ones
	// of the last two count as Dropped instead.
	Refused uint64
	// Delivered counts messages sent to consumers, redeliveries included.
	Delivered uint64
	// Redelivered counts deliveries of messages that had been delivered before
	// (after a release, a modified outcome or a consumer's loss).
	Redelivered uint64
	// Acked counts messages consumers accepted (or took pre-settled).
	Acked uint64
	// Released, Modified and Rejected count consumers' outcomes.
	Released, Modified, Rejected uint64
	// DeadLettered counts rejected messages moved to the dead-letter queue.
	DeadLettered uint64
	// Expired counts messages dropped because their ttl passed.
	Expired uint64
	// Dropped counts messages discarded without being acknowledged: sent to a topic
	// without subscribers, pre-settled to no node, left in a
	// temporary node when it was deleted, non-durable when a broker with a journal
	// restarted.
	Dropped uint64
}

// NodeInfo describes one node.
type NodeInfo struct {
	Name string
	Kind Kind
	// Pattern is the queue or topic pattern that created the node on demand; "" for
	// configured and temporary nodes.
	Pattern string
	// Temporary is true for a dynamic node or a topic's subscription queue: deleted
	// with its links (see the package doc), never journaled.
	Temporary bool
	// Retired is true for a queue made by a pattern that no link uses and that holds
	// no message: qpidd has deleted it. It is kept for its counts; the anonymous
	// relay treats it as absent, and the next link to attach there brings it back.
	Retired bool
	// Dynamic is true for a node created for a dynamic source or target.
	Dynamic bool
	// Topic names the topic a subscription queue is bound to.
	Topic string
	// Depth counts the messages a queue holds, those acquired by consumers included;
	// for a topic, those of its subscription queues.
	Depth int
	// Acquired counts messages delivered to consumers and not settled yet.
	Acquired int
	// Bytes is what the messages of Depth count against the queue's size limit: their
	// bytes as their senders sent them (qpidd's queue depth in bytes).
	Bytes int64
	// MaxBytes and MaxCount are a queue's limits (0: none); see Options.QueueLimit.
	MaxBytes int64
	MaxCount int
	// FlowStopped is true while a queue withholds its senders' outcomes (producer
	// flow control, see Options.FlowStopThreshold); Withheld counts the messages
	// whose outcome it withholds.
	FlowStopped bool
	Withheld    int
	// Consumers counts the receiving links (a topic's: its subscribers); Senders the
	// sending links attached to the node.
	Consumers, Senders int
	// Dequeued counts the messages that left a queue for good (acknowledged, expired,
	// dead-lettered, dropped or purged): Counts.Enqueued less Depth, as qpidd's
	// msgTotalDequeues is. For a topic it is the sum over its current subscription
	// queues. Messages recovered from a journal when the broker was created were not
	// counted as enqueued and are not counted here.
	Dequeued uint64
	Counts   Counts
}

func (n *node) info() NodeInfo {
	in := NodeInfo{
		Name: n.name, Kind: n.kind, Pattern: n.pattern, Temporary: n.temporary, Retired: n.retired, Dynamic: n.dynamic,
		Depth: n.depth(), Acquired: n.acquired, Consumers: len(n.consumers), Senders: len(n.senders),
		Counts: n.counts, Bytes: n.bytes, MaxBytes: n.limits.maxSize, MaxCount: n.limits.maxCount,
		FlowStopped: n.flowStopped, Withheld: n.heldCount,
	}
	if n.topic != nil {
		in.Topic = n.topic.name
	}
	in.Dequeued = dequeued(n)
	if n.kind == Topic {
		for _, sub := range n.subs {
			in.Depth += sub.depth()
			in.Bytes += sub.bytes
			in.Acquired += sub.acquired
			in.Consumers += len(sub.consumers)
			in.Dequeued += dequeued(sub)
		}
	}
	return in
}

// dequeued is what NodeInfo.Dequeued says of one queue.
func dequeued(n *node) uint64 {
	if d := uint64(n.depth()); n.counts.Enqueued > d {
		return n.counts.Enqueued - d
	}
	return 0
}

// Nodes returns every node, sorted by name. Expired messages are dropped first.
func (b *Broker) Nodes() []NodeInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]NodeInfo, 0, len(b.nodes))
	for _, n := range b.nodes {
		b.expireLocked(n)
	}
	for _, n := range b.nodes {
		out = append(out, n.info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Node describes one node; ok is false when there is none of that name.
func (b *Broker) Node(name string) (NodeInfo, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := b.nodes[name]
	if n == nil {
		return NodeInfo{Name: name}, false
	}
	b.expireNodeLocked(n)
	return n.info(), true
}

func (b *Broker) expireNodeLocked(n *node) {
	b.expireLocked(n)
	for _, sub := range n.subs {
		b.expireLocked(sub)
	}
}

// Depth returns the number of messages a node holds (see NodeInfo.Depth); 0 when
// there is no such node.
func (b *Broker) Depth(name string) int {
	in, _ := b.Node(name)
	return in.Depth
}

// Kind returns the kind of the node called addr, or the kind the patterns would
// give it; ok is false when there is no such node and no pattern matches.
func (b *Broker) Kind(addr string) (Kind, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n := b.nodes[addr]; n != nil {
		return n.kind, true
	}
	k, _, ok := b.policy.lookup(addr)
	return k, ok
}

// Message is a stored message, as Messages shows it.
type Message struct {
	// Seq is the broker's sequence number of the message: the order of storage.
	Seq uint64
	// Durable is true when the header says durable (or Options.JournalAll); Journaled
	// when the message is in the journal.
	Durable, Journaled bool
	// DeliveryCount is the header's delivery-count as the next consumer sees it.
	DeliveryCount uint32
	// Acquired is true while a consumer holds the message unsettled.
	Acquired bool
	// Expires is when the message expires; zero for never.
	Expires time.Time
	// Properties of the message.
	MessageID, CorrelationID any
	To, Subject, ReplyTo     string
	// ApplicationProperties of the message.
	ApplicationProperties map[string]any
	// Body is the body: []byte for data sections (joined), the value of an
	// amqp-value section (a string for oslo.messaging's JSON), []any for amqp-sequence
	// sections (joined).
	Body any
	// Raw is the encoded message as the next consumer gets it.
	Raw []byte
}

// Messages returns the messages a queue holds (for a topic, those of its
// subscription queues), acquired ones included, in the order they were stored,
// without consuming them.
func (b *Broker) Messages(name string) []Message {
	b.mu.Lock()
	n := b.nodes[name]
	var ms []*message
	if n != nil {
		b.expireNodeLocked(n)
		ms = n.messages()
		for _, sub := range n.subs {
			ms = append(ms, sub.messages()...)
		}
	}
	out := make([]Message, 0, len(ms))
	now := b.opts.Now().UnixNano()
	for _, m := range ms {
		out = append(out, Message{
			Seq: m.seq, Durable: m.durable, Journaled: m.journaled, DeliveryCount: m.count,
			Acquired: m.holder != nil, Raw: m.wireBytes(now),
		})
		if m.expires != 0 {
			out[len(out)-1].Expires = time.Unix(0, m.expires)
		}
	}
	b.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	for i := range out {
		decodeInto(&out[i])
	}
	return out
}

func decodeInto(out *Message) {
	var m wire.Message
	if m.Unmarshal(out.Raw) != nil {
		return
	}
	if p := m.Properties; p != nil {
		out.MessageID, out.CorrelationID = p.MessageID, p.CorrelationID
		out.To, out.Subject, out.ReplyTo = p.To, p.Subject, p.ReplyTo
	}
	out.ApplicationProperties = m.ApplicationProperties
	switch {
	case m.HasValue:
		out.Body = m.Value
	case len(m.Data) > 0:
		var body []byte
		for _, d := range m.Data {
			body = append(body, d...)
		}
		out.Body = body
	case len(m.Sequence) > 0:
		var seq []any
		for _, s := range m.Sequence {
			seq = append(seq, s...)
		}
		out.Body = seq
	}
}

// ConsumerInfo describes one consumer: a link the broker sends messages on.
type ConsumerInfo struct {
	// Conn identifies the connection; Container is the client's container-id.
	Conn      uint64
	Container string
	// Link is the link's name.
	Link string
	// Address is the link's source address (a topic's name for a subscriber).
	Address string
	// Queue is the queue the consumer takes messages from: a subscriber's
	// subscription queue.
	Queue string
	// Credit is the credit the client granted.
	Credit uint32
	// Unacked counts messages delivered to the consumer and not settled yet.
	Unacked int
}

// Consumers returns the consumers of the node called addr (for a topic, its
// subscribers), or of every node when addr is "", sorted by connection and link.
func (b *Broker) Consumers(addr string) []ConsumerInfo {
	b.mu.Lock()
	var out []ConsumerInfo
	add := func(n *node) {
		for _, co := range n.consumers {
			out = append(out, ConsumerInfo{
				Conn: co.link.Conn().ID(), Container: co.link.Conn().ContainerID(), Link: co.link.Name(),
				Address: co.link.Address(), Queue: n.name, Credit: co.link.Credit(), Unacked: len(co.unacked),
			})
		}
	}
	if addr == "" {
		for _, n := range b.nodes {
			add(n)
		}
	} else if n := b.nodes[addr]; n != nil {
		add(n)
		for _, sub := range n.subs {
			add(sub)
		}
	}
	b.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Conn != out[j].Conn {
			return out[i].Conn < out[j].Conn
		}
		return out[i].Link < out[j].Link
	})
	return out
}

// LinkInfo describes one attached link, from the client's point of view.
type LinkInfo = fakeutil.LinkInfo

// Links returns the links attached to the broker, sorted by connection and name.
func (b *Broker) Links() []LinkInfo {
	b.mu.Lock()
	conns := make([]*engine.Conn, 0, len(b.conns))
	for c := range b.conns {
		conns = append(conns, c)
	}
	b.mu.Unlock()
	return fakeutil.Links(conns)
}

// ConnInfo describes one client connection.
type ConnInfo = fakeutil.ConnInfo

// Conns describes the client connections, sorted by id.
func (b *Broker) Conns() []ConnInfo { return fakeutil.Conns(b.connList()) }

// Stats returns the counts over all nodes since the broker was created (Restart
// keeps them).
func (b *Broker) Stats() Counts {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.totals
}

// Connections returns the number of open client connections.
func (b *Broker) Connections() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.conns)
}

// Dump returns a readable description of every node and its messages, for a failing
// test's log.
func (b *Broker) Dump() string {
	var sb strings.Builder
	for _, n := range b.Nodes() {
		fmt.Fprintf(&sb, "%s %s depth=%d acquired=%d consumers=%d senders=%d", n.Kind, n.Name, n.Depth, n.Acquired, n.Consumers, n.Senders)
		if n.Topic != "" {
			fmt.Fprintf(&sb, " topic=%s", n.Topic)
		}
		if n.Temporary {
			sb.WriteString(" temporary")
		}
		if n.Retired {
			sb.WriteString(" retired")
		}
		fmt.Fprintf(&sb, " %+v\n", n.Counts)
		if n.Kind != Queue {
			continue
		}
		for _, m := range b.Messages(n.Name) {
			body := fmt.Sprint(m.Body)
			if bs, ok := m.Body.([]byte); ok {
				body = fmt.Sprintf("%q", bs)
			}
			if len(body) > 60 {
				body = body[:57] + "..."
			}
			fmt.Fprintf(&sb, "  #%d count=%d acquired=%v durable=%v %s\n", m.Seq, m.DeliveryCount, m.Acquired, m.Durable, body)
		}
	}
	return sb.String()
}

// waitFor blocks until cond holds (checked under the broker's lock after every
// change) or ctx ends.
func (b *Broker) waitFor(ctx context.Context, cond func() bool, what string) error {
	b.mu.Lock()
	b.waiters++
	defer func() {
		b.waiters--
		b.mu.Unlock()
	}()
	for {
		if cond() {
			return nil
		}
		ch := b.changed
		b.mu.Unlock()
		select {
		case <-ch:
			b.mu.Lock()
		case <-ctx.Done():
			b.mu.Lock()
			return fmt.Errorf("fakebroker: waiting for %s: %w", what, ctx.Err())
		}
	}
}

func (b *Broker) consumersLocked(n *node) int {
	c := len(n.consumers)
	for _, sub := range n.subs {
		c += len(sub.consumers)
	}
	return c
}

// WaitForConsumers blocks until the node called addr has at least n consumers (for a
// topic: subscribers), or ctx ends.
func (b *Broker) WaitForConsumers(ctx context.Context, addr string, n int) error {
	return b.waitFor(ctx, func() bool {
		nd := b.nodes[addr]
		return nd != nil && b.consumersLocked(nd) >= n
	}, fmt.Sprintf("%d consumers on %q", n, addr))
}

// WaitForPrefix blocks until nodes whose names start with prefix have at least n
// consumers in all, or ctx ends. It suits clients whose exact addresses are not known
// in advance (an oslo.messaging RPC server's three links, for example).
func (b *Broker) WaitForPrefix(ctx context.Context, prefix string, n int) error {
	return b.waitFor(ctx, func() bool {
		total := 0
		for name, nd := range b.nodes {
			if strings.HasPrefix(name, prefix) && nd.topic == nil {
				total += b.consumersLocked(nd)
			}
		}
		return total >= n
	}, fmt.Sprintf("%d consumers under %q", n, prefix))
}

// WaitForDepth blocks until the node called name holds exactly n messages (see
// NodeInfo.Depth; a missing node holds none), or ctx ends.
func (b *Broker) WaitForDepth(ctx context.Context, name string, n int) error {
	return b.waitFor(ctx, func() bool {
		nd := b.nodes[name]
		if nd == nil {
			return n == 0
		}
		b.expireNodeLocked(nd)
		return nd.info().Depth == n
	}, fmt.Sprintf("depth %d on %q", n, name))
}

// WaitForStats blocks until cond holds for the broker's counts, or ctx ends.
func (b *Broker) WaitForStats(ctx context.Context, cond func(Counts) bool) error {
	return b.waitFor(ctx, func() bool { return cond(b.totals) }, "a condition on the counts")
}

// WaitForConnections blocks until exactly n client connections are open, or ctx
// ends.
func (b *Broker) WaitForConnections(ctx context.Context, n int) error {
	return b.waitFor(ctx, func() bool { return len(b.conns) == n }, fmt.Sprintf("%d connections", n))
}

// CloseConnections closes every client connection with amqp:connection:forced; the
// broker keeps listening, so clients may reconnect.
func (b *Broker) CloseConnections() {
	for _, c := range b.connList() {
		c.Close(&wire.Error{Condition: wire.ErrCondConnectionForced, Description: "closed by fakebroker.CloseConnections"})
	}
}

// DropConnections cuts every client connection without an AMQP close, as a crash or
// a network failure would.
func (b *Broker) DropConnections() {
	for _, c := range b.connList() {
		c.Drop()
	}
}

// DropConnection cuts the client connection with the given id (ConsumerInfo.Conn,
// LinkInfo.Conn) without an AMQP close; it reports whether there was one.
func (b *Broker) DropConnection(id uint64) bool {
	for _, c := range b.connList() {
		if c.ID() == id {
			c.Drop()
			return true
		}
	}
	return false
}

func (b *Broker) connList() []*engine.Conn {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]*engine.Conn, 0, len(b.conns))
	for c := range b.conns {
		out = append(out, c)
	}
	return out
}

// StopCredit stops granting credit to senders until ResumeCredit: each keeps what it
// was granted (qpidd never takes credit back) and, once that is used, blocks as if
// the broker read no more; a sender attached meanwhile gets none.
func (b *Broker) StopCredit() { b.setCreditStopped(true) }

// ResumeCredit undoes StopCredit.
func (b *Broker) ResumeCredit() { b.setCreditStopped(false) }

func (b *Broker) setCreditStopped(stopped bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.creditStopped = stopped
	for c := range b.conns {
		for _, l := range c.Links() {
			if s, ok := l.Context.(*sender); ok {
				b.refreshSenderLocked(s)
			}
		}
	}
}

// Purge drops the available messages of a queue (those held by consumers stay) and
// returns how many; they count as Dropped.
func (b *Broker) Purge(name string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := b.nodes[name]
	if n == nil || n.kind != Queue {
		return 0
	}
	k := n.available()
	for _, m := range n.avail[n.head:] {
		n.counts.Dropped++
		b.totals.Dropped++
		b.dequeueLocked(n, m)
	}
	n.avail, n.head = nil, 0
	b.maybeCompactLocked()
	b.notifyLocked()
	return k
}
