package statuspage

import (
	"fmt"
	"io"
	"time"

	"github.com/amqp1kit/amqp1kit/fakebroker"
	"github.com/amqp1kit/amqp1kit/fakerouter"
)

// Snapshot is what the fakes held at one moment, as /api/status shows it. Router or
// Broker is nil when the page does not show that fake.
type Snapshot struct {
	Time   time.Time
	Router *RouterState `json:",omitempty"`
	Broker *BrokerState `json:",omitempty"`
}

// RouterState is a fake router's state: its inspection APIs' answers, together.
type RouterState struct {
	// ID is the router's container-id; URL where clients connect.
	ID, URL string
	// Totals are the counts over all addresses since the router started.
	Totals      fakerouter.Counts
	Connections []fakerouter.ConnInfo
	Links       []fakerouter.LinkInfo
	Addresses   []fakerouter.AddressInfo
}

// BrokerState is a fake broker's state: its inspection APIs' answers, together.
type BrokerState struct {
	// ID is the broker's container-id; URL where clients connect.
	ID, URL string
	// Totals are the counts over all nodes since the broker was created.
	Totals      fakebroker.Counts
	Connections []fakebroker.ConnInfo
	Links       []fakebroker.LinkInfo
	// Nodes are the queues, topics and subscription queues, sorted by name.
	Nodes []fakebroker.NodeInfo
}

// ReadRouter reads r's state.
func ReadRouter(r *fakerouter.Router) RouterState {
	return RouterState{
		ID: r.ID(), URL: r.URL(), Totals: r.Stats(),
		Connections: nonNil(r.Conns()), Links: nonNil(r.Links()), Addresses: nonNil(r.Addresses()),
	}
}

// ReadBroker reads b's state.
func ReadBroker(b *fakebroker.Broker) BrokerState {
	return BrokerState{
		ID: b.ID(), URL: b.URL(), Totals: b.Stats(),
		Connections: nonNil(b.Conns()), Links: nonNil(b.Links()), Nodes: nonNil(b.Nodes()),
	}
}

// nonNil makes an empty list [] in JSON rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// WriteText writes s as plain text, one line per connection, link, address and
// node, for a failing test's log.
func (s Snapshot) WriteText(w io.Writer) {
	if r := s.Router; r != nil {
		t := r.Totals
		fmt.Fprintf(w, "router %s %s: ingress=%d delivered=%d dropped=%d accepted=%d released=%d modified=%d rejected=%d\n",
			r.ID, r.URL, t.Ingress, t.Delivered, t.Dropped, t.Accepted, t.Released, t.Modified, t.Rejected)
		writeConns(w, r.Connections)
		writeLinks(w, r.Links)
		for _, a := range r.Addresses {
			fmt.Fprintf(w, "  address %s %s consumers=%d senders=%d waiting=%d in=%d out=%d dropped=%d\n",
				a.Address, a.Distribution, a.Consumers, a.Senders, a.Waiting, a.Counts.Ingress, a.Counts.Delivered, a.Counts.Dropped)
		}
	}
	if b := s.Broker; b != nil {
		t := b.Totals
		fmt.Fprintf(w, "broker %s %s: received=%d enqueued=%d delivered=%d acked=%d redelivered=%d expired=%d dropped=%d refused=%d\n",
			b.ID, b.URL, t.Received, t.Enqueued, t.Delivered, t.Acked, t.Redelivered, t.Expired, t.Dropped, t.Refused)
		writeConns(w, b.Connections)
		writeLinks(w, b.Links)
		for _, n := range b.Nodes {
			fmt.Fprintf(w, "  %s %s depth=%d acquired=%d consumers=%d senders=%d enqueued=%d dequeued=%d redelivered=%d expired=%d\n",
				n.Kind, n.Name, n.Depth, n.Acquired, n.Consumers, n.Senders, n.Counts.Enqueued, n.Dequeued, n.Counts.Redelivered, n.Counts.Expired)
		}
	}
}

func writeConns(w io.Writer, conns []fakerouter.ConnInfo) {
	for _, c := range conns {
		fmt.Fprintf(w, "  connection %d %s container=%q links=%d\n", c.ID, c.Remote, c.Container, c.Links)
	}
}

func writeLinks(w io.Writer, links []fakerouter.LinkInfo) {
	for _, l := range links {
		fmt.Fprintf(w, "  link %d/%s %s %q credit=%d unsettled=%d\n", l.Conn, l.Name, l.Role, l.Address, l.Credit, l.Unsettled)
	}
}
