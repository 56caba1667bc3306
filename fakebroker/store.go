package fakebroker

import (
	"encoding/binary"
	"math"
	"sort"

	"github.com/amqp1kit/amqp1kit/internal/engine"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// message is one stored message: one copy in one queue. The sender's bytes are kept
// as they came; each delivery writes a header of the broker's own in front of what
// follows the sender's header (see wireBytes), as qpidd does.
type message struct {
	seq        uint64
	payload    []byte // the message as its sender sent it (modified annotations merged)
	bare       int    // where what follows the sender's header section starts in payload
	durable    bool   // to journal: the header says durable (or Options.JournalAll)
	persistent bool   // the header's durable
	priority   uint8  // the header's priority, 4 when absent (qpidd's default)
	ttlAt      int64  // when the header's ttl runs out, Unix nanoseconds; 0 without ttl
	journaled  bool   // written to the journal
	expires    int64  // Unix nanoseconds; 0 for never
	count      uint32 // qpidd's delivery-count: deliveries that may have been seen
	delivered  bool   // sent to a consumer before
	holder     *consumer
	avoid      []*consumer // consumers that said undeliverable-here
	size       int64       // what the message counts against its queue's limit: its bytes as sent
	ingress    *ingress    // its sender's delivery, while a queue withholds the outcome
	held       bool        // this copy holds back ingress (producer flow control)
}

// newMessage makes a message of payload, which begins with header h when h is not
// nil. The sender's delivery-count and first-acquirer are not kept: a stored message
// starts as a first delivery (qpidd).
func newMessage(payload []byte, h *wire.Header) *message {
	m := &message{payload: payload, priority: 4, size: int64(len(payload))}
	if h != nil {
		m.persistent = h.Durable
		if h.Priority != nil {
			m.priority = *h.Priority
		}
		d := wire.NewDecoder(payload)
		if code, err := d.ReadDescriptor(); err == nil && code == wire.DescriptorHeader && d.Skip() == nil {
			m.bare = d.Offset()
		}
	}
	return m
}

// copyFor returns a copy of m for another queue (a topic's subscription, the
// dead-letter queue): the same bytes and header, a delivery of its own.
func (m *message) copyFor() *message {
	return &message{payload: m.payload, bare: m.bare, durable: m.durable, persistent: m.persistent,
		priority: m.priority, ttlAt: m.ttlAt, expires: m.expires, count: m.count, size: m.size}
}

// wireBytes returns the message as a consumer gets it at now (Unix nanoseconds): the
// header qpidd writes (its own encoding: durable, priority, the ttl that remains,
// first-acquirer while nothing counted a delivery, delivery-count; trailing defaults
// left out, no header at all when every field is a default) then the sender's bytes
// that followed its header, unchanged.
func (m *message) wireBytes(now int64) []byte {
	rest := m.payload[m.bare:]
	var ttl uint32
	if m.ttlAt != 0 {
		if left := (m.ttlAt - now) / 1e6; left >= 1 {
			ttl = uint32(min(left, math.MaxUint32))
		}
	}
	first := m.count == 0
	fields := 0
	switch {
	case m.count > 0:
		fields = 5
	case first:
		fields = 4
	case m.ttlAt != 0:
		fields = 3
	case m.priority != 4:
		fields = 2
	case m.persistent:
		fields = 1
	}
	if fields == 0 {
		return rest
	}
	b := make([]byte, 0, 24+len(rest))
	b = append(b, 0x00, 0x53, 0x70, 0xc0, 0, byte(fields)) // header, list8 size (below), count
	b = appendBool(b, m.persistent)
	if fields > 1 {
		b = append(b, 0x50, m.priority)
	}
	switch {
	case ttl != 0:
		b = appendUint(b, ttl)
	case fields > 2:
		b = append(b, 0x40)
	}
	switch {
	case first:
		b = append(b, 0x41)
	case fields > 3:
		b = append(b, 0x40)
	}
	if m.count > 0 {
		b = appendUint(b, m.count)
	} else if fields > 4 {
		b = append(b, 0x40)
	}
	b[4] = byte(len(b) - 5)
	return append(b, rest...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 0x41)
	}
	return append(b, 0x42)
}

// appendUint encodes a non-zero uint as qpidd does: smalluint below 256.
func appendUint(b []byte, v uint32) []byte {
	if v < 256 {
		return append(b, 0x52, byte(v))
	}
	return binary.BigEndian.AppendUint32(append(b, 0x70), v)
}

func (m *message) avoids(co *consumer) bool {
	for _, a := range m.avoid {
		if a == co {
			return true
		}
	}
	return false
}

// node is a queue or a topic. A queue holds messages in sequence order: the
// available ones in avail[head:], the acquired ones with their consumers. A topic
// holds no messages: its subscribers each have a subscription queue.
type node struct {
	name      string
	kind      Kind
	temporary bool  // a dynamic node or a subscription queue, never journaled
	dynamic   bool  // created for a dynamic terminus
	topic     *node // the topic a subscription queue is bound to
	exclusive bool  // a subscription that is not shared: one consumer at a time
	owner     *engine.Link
	life      lifetime
	delay     int64 // lifeUnused: how long an unused node waits to be deleted, ns
	deleteAt  int64 // when an unused node is to be deleted, Unix ns; 0 for not
	retired   bool  // lifeUnusedAndEmpty: unused and empty, so gone for qpidd
	deleted   bool
	pattern   string

	avail    []*message
	head     int
	acquired int
	expiring int // messages with an expiry time
	rr       int

	consumers []*consumer
	senders   []*sender
	subs      []*node // a topic's subscription queues
	counts    Counts

	limits      queueLimits // a queue's limits (limits.go)
	msgs        int         // messages stored and not yet gone for good: depth, kept as qpidd counts it
	bytes       int64       // their size
	flowStopped bool        // producer flow control: new messages' outcomes are withheld
	held        []*message  // messages whose outcome this queue withholds (some may be released)
	heldCount   int         // those of held still withheld
}

// consumer is a link the broker sends on (the client's receiver).
type consumer struct {
	link      *engine.Link
	node      *node
	unacked   map[*message]struct{}
	gone      bool
	presettle bool   // send every message settled (a topic subscription's copies)
	browse    bool   // a browser: sent copies of the messages, takes none (browse.go)
	browsed   uint64 // a browser's cursor: the seq of the last message it was sent
}

// sender is a link the broker receives on (the client's sender); node is nil on an
// anonymous-relay link.
type sender struct {
	link *engine.Link
	node *node
}

func (n *node) available() int { return len(n.avail) - n.head }

// depth counts the messages the queue holds, acquired ones included.
func (n *node) depth() int { return n.available() + n.acquired }

// push appends a new message (its seq is the highest so far).
func (n *node) push(m *message) {
	n.msgs++
	n.bytes += m.size
	n.avail = append(n.avail, m)
	if m.expires != 0 {
		n.expiring++
	}
}

// putBack makes an acquired or new message available again at its place in
// sequence order (qpidd's queues keep a released message's position).
func (n *node) putBack(m *message) {
	live := n.avail[n.head:]
	i := sort.Search(len(live), func(i int) bool { return live[i].seq > m.seq })
	if i == len(live) {
		n.avail = append(n.avail, m)
		return
	}
	if i == 0 && n.head > 0 {
		n.head--
		n.avail[n.head] = m
		return
	}
	at := n.head + i
	n.avail = append(n.avail, nil)
	copy(n.avail[at+1:], n.avail[at:])
	n.avail[at] = m
}

// removeAt takes the available message at index i of avail.
func (n *node) removeAt(i int) *message {
	m := n.avail[i]
	if i == n.head {
		n.avail[i] = nil
		n.head++
		if n.head == len(n.avail) {
			n.avail, n.head = n.avail[:0], 0
		} else if n.head >= 1024 && n.head*2 >= len(n.avail) {
			k := copy(n.avail, n.avail[n.head:])
			clear(n.avail[k:])
			n.avail, n.head = n.avail[:k], 0
		}
	} else {
		copy(n.avail[i:], n.avail[i+1:])
		n.avail[len(n.avail)-1] = nil
		n.avail = n.avail[:len(n.avail)-1]
	}
	return m
}

// forget accounts for a message that leaves the queue for good.
func (n *node) forget(m *message) {
	n.msgs--
	n.bytes -= m.size
	if m.expires != 0 {
		n.expiring--
	}
	n.dequeued(m)
}

// messages returns the queue's messages, available and acquired, in sequence
// order.
func (n *node) messages() []*message {
	out := append([]*message(nil), n.avail[n.head:]...)
	for _, co := range n.consumers {
		for m := range co.unacked {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

// sectionEnd reads the section that starts at off in b and returns its descriptor
// code and where it ends.
func sectionEnd(b []byte, off int) (uint64, int, bool) {
	d := wire.NewDecoder(b[off:])
	code, err := d.ReadDescriptor()
	if err != nil || d.Skip() != nil {
		return 0, off, false
	}
	return code, off + d.Offset(), true
}

// mergeAnnotations merges a modified outcome's message-annotations into the message:
// its message-annotations section is rewritten (or one is added after the header and
// delivery-annotations), the other sections keep their bytes.
func (m *message) mergeAnnotations(ann wire.Fields) {
	p := m.payload
	off := m.bare
	code, end, ok := sectionEnd(p, off)
	if ok && code == wire.DescriptorDeliveryAnnotations {
		off = end
		code, end, ok = sectionEnd(p, off)
	}
	merged := wire.Annotations{}
	if ok && code == wire.DescriptorMessageAnnotations {
		var old wire.Message
		if old.Unmarshal(p[off:end]) != nil {
			return
		}
		for k, v := range old.MessageAnnotations {
			merged[k] = v
		}
	} else {
		end = off
	}
	for k, v := range ann {
		merged[k] = v
	}
	section, err := (&wire.Message{MessageAnnotations: merged}).AppendTo(nil)
	if err != nil {
		return
	}
	out := make([]byte, 0, len(p)-(end-off)+len(section))
	out = append(append(append(out, p[:off]...), section...), p[end:]...)
	m.payload = out
}
