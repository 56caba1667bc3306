package driver

import (
	"context"
	"errors"
	"sync"
	"time"

	amqp "github.com/Azure/go-amqp"
)

// subscription is a listener's set of receiver links, attached on every connection
// the transport makes (addresses worked out again from each peer) and re-attached
// with the same name after link_retry_delay when the peer detaches one.
type subscription struct {
	t      *Transport
	addrs  func(a *Addresser) []string
	credit uint32
	handle func(c *connection, r *amqp.Receiver, m *amqp.Message)

	mu      sync.Mutex
	links   []listenerLink
	stopped bool
	ready   chan struct{} // closed once the links of a connection are attached
}

// listenerLink is one receiver link with its own session, as pyngus makes them.
type listenerLink struct {
	r    *amqp.Receiver
	sess *amqp.Session
}

// spawn runs f in a goroutine the transport's Close waits for, unless the transport
// is closed.
func (t *Transport) spawn(f func()) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		f()
	}()
	return true
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
	t.startLocked()
	t.mu.Unlock()
	if cur != nil {
		s.attachOn(cur)
		return nil
	}
	// Not connected yet: wait a moment for the first attempts, so that a refusal no
	// retry can fix (a peer refusing the dynamic reply link, bad credentials, a TLS
	// failure) reaches the caller of Start instead of leaving the listener waiting
	// forever. An intermediary that is merely down is retried in the background, as
	// Python's listen() does.
	ctx, cancel := context.WithTimeout(context.Background(), subscribeWait)
	defer cancel()
	if _, err := t.connection(ctx); err != nil && !errors.Is(err, ErrTimeout) {
		t.unsubscribe(s)
		return err
	}
	return nil
}

// subscribeWait bounds how long Start waits for a first connection outcome.
const subscribeWait = 2 * time.Second

// unsubscribe detaches the links, ends their sessions and forgets the subscription.
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
		_ = l.r.Close(ctx)
		_ = l.sess.Close(ctx)
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

// attachOne attaches one receiver link: source = target = addr, sender settle mode
// mixed, credit granted at once, as the Python driver's listener links.
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
		if err != nil {
			_ = sess.Close(ctx)
		}
	}
	if err != nil {
		s.t.log.Warn("attaching a listener link failed; retrying", "address", addr, "err", err, "after", s.t.opts.LinkRetryDelay)
		s.retryLater(c, addr, name)
		return
	}
	l := listenerLink{r: r, sess: sess}
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		_ = r.Close(ctx)
		_ = sess.Close(ctx)
		return
	}
	s.links = append(s.links, l)
	s.mu.Unlock()
	if !s.t.spawn(func() { s.receive(c, l, addr, name) }) {
		_ = r.Close(ctx)
		_ = sess.Close(ctx)
	}
}

// retryLater attaches the link again after link_retry_delay, unless the connection
// went away meanwhile (the next one attaches every link anyway).
func (s *subscription) retryLater(c *connection, addr, name string) {
	s.t.spawn(func() {
		select {
		case <-time.After(s.t.opts.LinkRetryDelay):
		case <-c.conn.Done():
			return
		case <-s.t.stop:
			return
		}
		s.attachOne(c, addr, name)
	})
}

func (s *subscription) receive(c *connection, l listenerLink, addr, name string) {
	ctx := context.Background()
	for {
		m, err := l.r.Receive(ctx, nil)
		if err != nil {
			s.mu.Lock()
			found := false
			for i, x := range s.links {
				if x.r == l.r {
					s.links = append(s.links[:i:i], s.links[i+1:]...)
					found = true
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
			if found && !stopped {
				// The peer detached the link: re-attach with the same name, as Python.
				s.t.log.Warn("listener link detached by the peer; re-attaching", "address", addr, "err", err, "after", s.t.opts.LinkRetryDelay)
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_ = l.sess.Close(ctx)
				cancel()
				s.retryLater(c, addr, name)
			}
			return
		}
		s.handle(c, l.r, m)
	}
}
