package engine

import (
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// queuePolicy is the small test policy of the engine's tests: one FIFO queue per
// address, store-and-forward, dynamic sources named "dyn-N", and records of what it
// saw so tests can assert on it.
type queuePolicy struct {
	NopHandler
	mu        sync.Mutex
	queues    map[string][]queued
	consumers map[string][]*Link
	dyn       int
	outcomes  []wire.DeliveryState
	detached  []string
	closed    []error
	opened    int
	users     []string
	refuse    map[string]*wire.Error // address → refusal
	noAutoAck bool                   // leave deliveries from clients unsettled
	held      []*Delivery
}

type queued struct {
	payload []byte
}

func newQueuePolicy() *queuePolicy {
	return &queuePolicy{queues: map[string][]queued{}, consumers: map[string][]*Link{}, refuse: map[string]*wire.Error{}}
}

func (p *queuePolicy) Opened(c *Conn) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.opened++
	p.users = append(p.users, c.User())
	return nil
}

func (p *queuePolicy) Closed(c *Conn, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = append(p.closed, err)
}

func (p *queuePolicy) Attach(l *Link) error {
	p.mu.Lock()
	if l.Role() == wire.RoleSender && l.Source() != nil && l.Source().Dynamic {
		p.dyn++
		name := fmt.Sprintf("dyn-%d", p.dyn)
		p.mu.Unlock()
		l.SetSourceAddress(name)
		p.mu.Lock()
	}
	addr := l.Address()
	if e := p.refuse[addr]; e != nil {
		p.mu.Unlock()
		return e
	}
	if l.Role() == wire.RoleSender {
		p.consumers[addr] = append(p.consumers[addr], l)
		p.mu.Unlock()
		return nil
	}
	p.mu.Unlock()
	return l.SetCredit(100)
}

func (p *queuePolicy) LinkDetached(l *Link, err *wire.Error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.detached = append(p.detached, l.Name())
	addr := l.Address()
	cs := p.consumers[addr]
	for i, c := range cs {
		if c == l {
			p.consumers[addr] = append(cs[:i:i], cs[i+1:]...)
			break
		}
	}
	// Unsettled deliveries go back to the queue's head: nothing is lost.
	for _, d := range l.Unsettled() {
		p.queues[addr] = append([]queued{{payload: d.Payload}}, p.queues[addr]...)
	}
}

func (p *queuePolicy) Delivery(l *Link, d *Delivery) {
	p.mu.Lock()
	addr := l.Address()
	if addr == "" { // anonymous relay: route by the to property
		if _, props, err := wire.ScanMessage(d.Payload); err == nil && props != nil {
			addr = props.To
		}
	}
	p.queues[addr] = append(p.queues[addr], queued{payload: d.Payload})
	hold := p.noAutoAck
	if hold {
		p.held = append(p.held, d)
	}
	p.mu.Unlock()
	if !d.Settled && !hold {
		d.Settle(&wire.Accepted{})
	}
	p.pump(addr)
	// Keep the sender's credit topped up.
	if l.Credit() < 50 {
		_ = l.SetCredit(100)
	}
}

func (p *queuePolicy) Credit(l *Link) { p.pump(l.Address()) }

func (p *queuePolicy) Disposition(l *Link, d *Delivery, state wire.DeliveryState, settled bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if settled {
		p.outcomes = append(p.outcomes, state)
	}
	if _, ok := state.(*wire.Released); ok && settled {
		p.queues[l.Address()] = append([]queued{{payload: d.Payload}}, p.queues[l.Address()]...)
	}
}

// pump sends queued messages of addr to consumers with credit.
func (p *queuePolicy) pump(addr string) {
	for {
		p.mu.Lock()
		q := p.queues[addr]
		if len(q) == 0 {
			p.mu.Unlock()
			return
		}
		var target *Link
		for _, c := range p.consumers[addr] {
			if c.Credit() > 0 {
				target = c
				break
			}
		}
		if target == nil {
			p.mu.Unlock()
			return
		}
		p.queues[addr] = q[1:]
		p.mu.Unlock()
		if _, err := target.Send(q[0].payload, false, nil); err != nil {
			p.mu.Lock()
			p.queues[addr] = append([]queued{q[0]}, p.queues[addr]...)
			p.mu.Unlock()
			return
		}
	}
}

func (p *queuePolicy) depth(addr string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queues[addr])
}

// startServer serves p on a loopback port for the test's duration.
func startServer(t testing.TB, h Handler, opts *Options) (*Server, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(h, opts)
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { s.Close() })
	return s, "amqp://" + l.Addr().String()
}
