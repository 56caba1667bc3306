// Package engine is the server side of AMQP 1.0 connections: protocol header
// negotiation (AMQP, SASL and TLS layers), SASL ANONYMOUS, PLAIN and EXTERNAL, open,
// sessions with their windows, links in both roles with credit, drain and echo,
// multi-frame transfers, settlement, dispositions over ranges, size limits, idle
// time-outs, and detach/end/close with error conditions.
//
// The engine decides nothing about where a message goes. It hands attaches, deliveries,
// credit and settlements to a Handler (the fake router or the fake broker), which acts
// through the methods of Conn, Link and Delivery. Those methods are safe to call from
// any goroutine; Handler callbacks of one connection run one at a time on that
// connection's reading goroutine, never while the engine holds a lock, so a handler may
// act on other connections from inside a callback.
package engine

import "github.com/amqp1kit/amqp1kit/internal/wire"

// Handler is the policy above the engine: a router or a broker. Every callback of one
// connection runs on that connection's goroutine, in the order the frames arrived.
type Handler interface {
	// Opened is called when a client's open frame has been received, before the
	// engine answers it. Returning an error refuses the connection: the engine sends
	// open then close with that error (a *wire.Error keeps its condition).
	Opened(c *Conn) error
	// Closed is called once when the connection is gone, after LinkDetached has been
	// called for each of its links. err is what Conn.Err returns: nil for an orderly
	// close without an error.
	Closed(c *Conn, err error)

	// Attach is called when the peer attaches a link. The handler may change the
	// link's terminus (for example name a dynamic node with SetSourceAddress) and
	// returns nil to accept it, or an error to refuse it (a *wire.Error keeps its
	// condition, anything else becomes amqp:internal-error).
	Attach(l *Link) error
	// LinkDetached is called once when a link that Attach accepted is gone: detached
	// by either side, or its session or connection ended. Deliveries it sent and the
	// peer never settled are in l.Unsettled(). When the handler itself detaches the
	// link (Link.Close), LinkDetached runs on the goroutine that called Close, before
	// Close returns: do not call Close while holding a lock LinkDetached takes.
	LinkDetached(l *Link, err *wire.Error)

	// Delivery is called when a whole message has arrived on a link where the peer is
	// the sender. The handler owns d.Payload. Unless d.Settled (the peer sent it
	// pre-settled) the handler must eventually call d.Settle or d.Update.
	Delivery(l *Link, d *Delivery)
	// Credit is called when the peer, as receiver, changed the link's credit or asked
	// for a drain. The handler sends what it can now; when it returns with the link
	// still draining, the engine completes the drain (spends the remaining credit and
	// tells the peer).
	Credit(l *Link)
	// Disposition is called when the peer changed the state of a delivery: one the
	// handler sent (the peer is the receiver) or one the peer sent and the handler
	// has not settled yet.
	Disposition(l *Link, d *Delivery, state wire.DeliveryState, settled bool)
}

// WritableHandler is a Handler that wants to know when a connection whose queued
// output went over Options.OutputHighWater has drained below half of it (Conn.Writable
// is true again). Writable is called on the connection's writing goroutine, with no
// engine lock held.
type WritableHandler interface {
	Handler
	Writable(c *Conn)
}

// AbortHandler is a Handler that wants to know when the peer, as sender, aborted a
// delivery (part 2.6.12): the engine drops what had arrived of it, and the delivery
// counts against the link's credit as any other. Aborted is called on the
// connection's reading goroutine, with no engine lock held, where Delivery would have
// been.
type AbortHandler interface {
	Handler
	Aborted(l *Link)
}

// NopHandler implements Handler with callbacks that accept every link and ignore
// every event. Embed it to implement only the callbacks a policy needs.
type NopHandler struct{}

// Opened accepts the connection.
func (NopHandler) Opened(*Conn) error { return nil }

// Closed does nothing.
func (NopHandler) Closed(*Conn, error) {}

// Attach accepts the link.
func (NopHandler) Attach(*Link) error { return nil }

// LinkDetached does nothing.
func (NopHandler) LinkDetached(*Link, *wire.Error) {}

// Delivery settles pre-settled deliveries by dropping them and accepts the others.
func (NopHandler) Delivery(_ *Link, d *Delivery) {
	if !d.Settled {
		d.Settle(&wire.Accepted{})
	}
}

// Credit does nothing.
func (NopHandler) Credit(*Link) {}

// Disposition does nothing.
func (NopHandler) Disposition(*Link, *Delivery, wire.DeliveryState, bool) {}
