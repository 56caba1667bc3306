package driver

import (
	"context"
	"sync"
	"time"

	amqp "github.com/Azure/go-amqp"
)

// subscription is a listener's set of receiver links, attached on every connection
// the transport makes (addresses worked out again from each peer) and re-attached
// after link_retry_delay when the peer detaches one.
type subscription struct {
	t      *Transport
	addrs  func(a *Addresser) []string
	credit uint32
	handle func(c *connection, r *amqp.Receiver, m *amqp.Message)

	mu      sync.Mutex
	links   []*amqp.Receiver
	stopped bool
	ready   chan struct{} // closed once the links of a connection are attached
}

func (t *Transport) subscribe(s *subscription) error {
	s.t = t
	s.ready = make(chan struct{})
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return ErrClosed
	}
	t.subs[s] = struct{}{}
	cur := t.cur
	if !t.started {
		t.started = true
		t.wg.Add(1)
		go t.supervise()
	}
	t.mu.Unlock()
	if cur != nil {
		s.attachOn(cur)
	}
	return nil
}

// unsubscribe detaches the links and forgets the subscription.
func (t *Transport) unsubscribe(s *subscription) {
	t.mu.Lock()
	delete(t.subs, s)
	t.mu.Unlock()
	s.mu.Lock()
	s.stopped = true
	links := s.links
	s.links = nil
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, l := range links {
		_ = l.Close(ctx)
	}
}

// attachOn attaches the subscription's links on connection c.
func (s *subscription) attachOn(c *connection) {
	for _, addr := range s.addrs(c.addresser) {
		s.attachOne(c, addr, "openstack.org/om/receiver/["+addr+"]/"+newUUIDHex())
	}
	s.mu.Lock()
	select {
	case <-s.ready:
	default:
		close(s.ready)
	}
	s.mu.Unlock()
}

func (s *subscription) attachOne(c *connection, addr, name string) {
	s.mu.Lock()
	stopped := s.stopped
	s.mu.Unlock()
	if stopped {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mixed := amqp.SenderSettleModeMixed
	var r *amqp.Receiver
	sess, err := c.conn.NewSession(ctx, nil)
	if err == nil {
		r, err = sess.NewReceiver(ctx, addr, &amqp.ReceiverOptions{
			Name:                      name,
			TargetAddress:             addr,
			Credit:                    int32(s.credit),
			RequestedSenderSettleMode: &mixed,
		})
	}
	if err != nil {
		s.t.log.Warn("attaching a listener link failed; retrying", "address", addr, "err", err, "after", s.t.opts.LinkRetryDelay)
		s.retryLater(c, addr, name)
		return
	}
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		_ = r.Close(ctx)
		return
	}
	s.links = append(s.links, r)
	s.mu.Unlock()
	s.t.wg.Add(1)
	go s.receive(c, r, addr, name)
}

func (s *subscription) retryLater(c *connection, addr, name string) {
	s.t.wg.Add(1)
	go func() {
		defer s.t.wg.Done()
		select {
		case <-time.After(s.t.opts.LinkRetryDelay):
		case <-c.conn.Done():
			return // the new connection attaches everything again
		case <-s.t.stop:
			return
		}
		s.attachOne(c, addr, name)
	}()
}

func (s *subscription) receive(c *connection, r *amqp.Receiver, addr, name string) {
	defer s.t.wg.Done()
	ctx := context.Background()
	for {
		m, err := r.Receive(ctx, nil)
		if err != nil {
			s.mu.Lock()
			for i, l := range s.links {
				if l == r {
					s.links = append(s.links[:i:i], s.links[i+1:]...)
					break
				}
			}
			stopped := s.stopped
			s.mu.Unlock()
			select {
			case <-c.conn.Done():
				return
			default:
			}
			if !stopped {
				// The peer detached the link: re-attach with the same name, as Python.
				s.t.log.Warn("listener link detached by the peer; re-attaching", "address", addr, "err", err)
				s.retryLater(c, addr, name)
			}
			return
		}
		s.handle(c, r, m)
	}
}
