package fakebroker

import (
	"sort"

	"github.com/amqp1kit/amqp1kit/internal/engine"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// message is one stored message: one copy in one queue.
type message struct {
	seq       uint64
	payload   []byte // the encoded message as the next consumer gets it
	durable   bool   // the header says durable (or Options.JournalAll)
	journaled bool   // written to the journal
	expires   int64  // Unix nanoseconds; 0 for never
	count     uint32 // the header's delivery-count
	delivered bool   // sent to a consumer before
	holder    *consumer
	avoid     []*consumer // consumers that said undeliverable-here
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
	temporary bool  // a dynamic node or a subscription queue, deleted with its link
	dynamic   bool  // created for a dynamic terminus
	topic     *node // the topic a subscription queue is bound to
	owner     *engine.Link
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
}

// consumer is a link the broker sends on (the client's receiver).
type consumer struct {
	link    *engine.Link
	node    *node
	unacked map[*message]struct{}
	gone    bool
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
	if m.expires != 0 {
		n.expiring--
	}
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

// withDeliveryCount returns the encoded message with its header's delivery-count
// set to count (a header is added when there is none).
func withDeliveryCount(payload []byte, count uint32) []byte {
	h, _, _ := wire.ScanMessage(payload)
	rest := payload
	d := wire.NewDecoder(payload)
	if code, err := d.ReadDescriptor(); err == nil && code == wire.DescriptorHeader {
		if d.Skip() != nil {
			return payload
		}
		rest = payload[d.Offset():]
	}
	var nh wire.Header
	if h != nil {
		nh = *h
	}
	nh.DeliveryCount = count
	nh.FirstAcquirer = false
	out, err := nh.AppendTo(make([]byte, 0, len(rest)+32))
	if err != nil {
		return payload
	}
	return append(out, rest...)
}

// withAnnotations merges a modified outcome's message-annotations into the message.
func withAnnotations(payload []byte, ann wire.Fields) []byte {
	var m wire.Message
	if m.Unmarshal(payload) != nil {
		return payload
	}
	if m.MessageAnnotations == nil {
		m.MessageAnnotations = wire.Annotations{}
	}
	for k, v := range ann {
		m.MessageAnnotations[k] = v
	}
	out, err := m.AppendTo(nil)
	if err != nil {
		return payload
	}
	return out
}
