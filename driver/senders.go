package driver

import (
	"context"
	"errors"
	"sync"
	"time"

	amqp "github.com/Azure/go-amqp"
)

// cachedSender is the sender link of one destination address, on its own session as
// pyngus does. Its fields other than once, sess, sender and err are guarded by the
// connection's mu; sess, sender and err are written once inside once.Do, and read
// by the purge only when inUse is 0 (so after once.Do finished, ordered by mu).
type cachedSender struct {
	once   sync.Once
	sess   *amqp.Session
	sender *amqp.Sender
	err    error

	inUse int  // sends in progress, attach included
	used  bool // a send started since the last purge
}

// sender returns the cached sender link for addr, attaching it (on its own session,
// source = target = addr, as the Python driver does) on first use, and a release
// function the caller must call once its send is over (accepted, refused or
// abandoned): until then the link is not purged.
func (c *connection) sender(ctx context.Context, addr string) (*amqp.Sender, func(), error) {
	c.mu.Lock()
	if c.gone {
		c.mu.Unlock()
		return nil, nil, errConnLost
	}
	cs := c.senders[addr]
	if cs == nil {
		cs = &cachedSender{}
		c.senders[addr] = cs
	}
	cs.inUse++
	cs.used = true
	c.mu.Unlock()
	release := func() {
		c.mu.Lock()
		cs.inUse--
		c.mu.Unlock()
	}
	cs.once.Do(func() {
		cs.sess, cs.err = c.conn.NewSession(ctx, nil)
		if cs.err != nil {
			return
		}
		cs.sender, cs.err = cs.sess.NewSender(ctx, addr, &amqp.SenderOptions{
			Name:          "openstack.org/om/sender/[" + addr + "]/" + newUUIDHex(),
			SourceAddress: addr,
		})
		if cs.err != nil {
			c.closeLink(nil, cs.sess)
		}
	})
	if cs.err != nil {
		c.mu.Lock()
		cs.inUse--
		if c.senders[addr] == cs {
			delete(c.senders, addr)
		}
		c.mu.Unlock()
		return nil, nil, cs.err
	}
	return cs.sender, release, nil
}

// dropSender forgets a sender whose link failed, so the next send attaches a new one.
func (c *connection) dropSender(addr string, s *amqp.Sender) {
	c.mu.Lock()
	cs := c.senders[addr]
	if cs == nil || cs.sender != s {
		c.mu.Unlock()
		return
	}
	delete(c.senders, addr)
	c.mu.Unlock()
	c.closeLink(s, cs.sess)
}

// closeLink detaches a sender link and ends its session, waiting a little for the
// peer (not at all when the connection is gone).
func (c *connection) closeLink(s *amqp.Sender, sess *amqp.Session) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if s != nil {
		_ = s.Close(ctx)
	}
	if sess != nil {
		_ = sess.Close(ctx)
	}
}

// purgeSenders detaches idle sender links, as Python's Controller._purge_sender_links:
// every default_sender_link_timeout, the senders with no send started during the last
// period and none in progress are detached (closed) and forgotten; the next send to
// their address attaches a new link. A link therefore lives idle between one and two
// periods. The RPC server's links to its callers' reply addresses are purged the same
// way.
func (c *connection) purgeSenders() {
	defer c.t.wg.Done()
	period := c.t.opts.DefaultSenderLinkTimeout
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-c.conn.Done():
			return
		case <-c.t.stop:
			return
		case <-tick.C:
		}
		var idle []*cachedSender
		var addrs []string
		c.mu.Lock()
		for addr, cs := range c.senders {
			switch {
			case cs.inUse > 0:
			case cs.used:
				cs.used = false
			default:
				delete(c.senders, addr)
				idle = append(idle, cs)
				addrs = append(addrs, addr)
			}
		}
		c.mu.Unlock()
		for i, cs := range idle {
			c.t.log.Debug("detaching an idle sender link", "address", addrs[i], "idle_for", period)
			c.closeLink(cs.sender, cs.sess)
		}
	}
}

// forgetSenderOn drops the cached sender of addr when err says its link, session or
// connection failed.
func (c *connection) forgetSenderOn(addr string, s *amqp.Sender, err error) {
	var le *amqp.LinkError
	var ce *amqp.ConnError
	var se *amqp.SessionError
	if errors.As(err, &le) || errors.As(err, &ce) || errors.As(err, &se) {
		c.dropSender(addr, s)
	}
}
