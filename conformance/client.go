package conformance

import (
	"context"
	"errors"
	"time"

	amqp "github.com/Azure/go-amqp"
)

// quietPeriod is how long a case waits to see that something does not happen (a
// settlement that must wait, a copy that must not come). It proves nothing on its
// own; every such check is paired with the positive outcome that follows it.
const quietPeriod = 200 * time.Millisecond

// client is one go-amqp connection with one session, closed when the case ends.
type client struct {
	t    testingT
	conn *amqp.Conn
	sess *amqp.Session
}

// caseContext is the context of the running case: it ends with the case's time
// (Harness.Timeout).
func caseContext(t testingT) context.Context { return t.Context() }

func connect(t testingT, h *Harness) *client {
	t.Helper()
	ctx := caseContext(t)
	conn, err := amqp.Dial(ctx, h.URL, nil)
	if err != nil {
		t.Fatalf("connect to %s: %v", h.Name, err)
	}
	t.Cleanup(func() { conn.Close() })
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		t.Fatalf("begin a session on %s: %v", h.Name, err)
	}
	return &client{t: t, conn: conn, sess: sess}
}

func (c *client) receiver(addr string, opts *amqp.ReceiverOptions) *amqp.Receiver {
	c.t.Helper()
	r, err := c.sess.NewReceiver(caseContext(c.t), addr, opts)
	if err != nil {
		c.t.Fatalf("attach a receiver to %q: %v", addr, err)
	}
	return r
}

func (c *client) sender(addr string, opts *amqp.SenderOptions) *amqp.Sender {
	c.t.Helper()
	s, err := c.sess.NewSender(caseContext(c.t), addr, opts)
	if err != nil {
		c.t.Fatalf("attach a sender to %q: %v", addr, err)
	}
	return s
}

// settled sends m pre-settled on a sender of the default (mixed) settle mode, as the
// oslo driver sends casts, replies and fanouts: each delivery settled, not the link.
// (A link asking for snd-settle-mode settled is a different thing, which a peer may
// answer with another mode, part 2.7.3.)
func settled(ctx context.Context, snd *amqp.Sender, m *amqp.Message) error {
	return snd.Send(ctx, m, &amqp.SendOptions{Settled: true})
}

func text(body string) *amqp.Message { return amqp.NewMessage([]byte(body)) }

func bodyOf(m *amqp.Message) string { return string(m.GetData()) }

// receiveWithin returns the next message, or nil when none comes within d.
func receiveWithin(t testingT, r *amqp.Receiver, d time.Duration) *amqp.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(caseContext(t), d)
	defer cancel()
	m, err := r.Receive(ctx, nil)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil
		}
		t.Fatalf("receive: %v", err)
	}
	return m
}

// mustReceive returns the next message or fails the case.
func mustReceive(t testingT, r *amqp.Receiver) *amqp.Message {
	t.Helper()
	m, err := r.Receive(caseContext(t), nil)
	if err != nil {
		t.Fatalf("receive from %q: %v", r.Address(), err)
	}
	return m
}

// awaitReceipt returns the sender's final delivery state.
func awaitReceipt(t testingT, rc amqp.SendReceipt) amqp.DeliveryState {
	t.Helper()
	state, err := rc.Wait(caseContext(t))
	if err != nil {
		t.Fatalf("waiting for the outcome: %v", err)
	}
	return state
}

// settledWithin reports whether the receipt is settled within d.
func settledWithin(t testingT, rc amqp.SendReceipt, d time.Duration) bool {
	ctx, cancel := context.WithTimeout(caseContext(t), d)
	defer cancel()
	_, err := rc.Wait(ctx)
	return !errors.Is(err, context.DeadlineExceeded)
}

// subscribed sends pre-settled probes to a multicast address until every receiver
// has one, so that a case starts once the intermediary knows all its consumers
// (qdrouterd propagates addresses asynchronously), and drains the probes.
func subscribed(t testingT, snd *amqp.Sender, rcvs ...*amqp.Receiver) {
	t.Helper()
	have := make([]bool, len(rcvs))
	for n := 0; ; n++ {
		if err := settled(caseContext(t), snd, text("probe")); err != nil {
			t.Fatalf("send a probe: %v", err)
		}
		all := true
		for i, r := range rcvs {
			for m := receiveWithin(t, r, 20*time.Millisecond); m != nil; m = receiveWithin(t, r, 5*time.Millisecond) {
				have[i] = true
				_ = r.AcceptMessage(caseContext(t), m)
			}
			all = all && have[i]
		}
		if all {
			break
		}
		if caseContext(t).Err() != nil {
			t.Fatalf("after %d probes, not every consumer of %q receives: %v", n+1, snd.Address(), have)
		}
	}
	// Late probes still on their way.
	for _, r := range rcvs {
		for m := receiveWithin(t, r, quietPeriod); m != nil; m = receiveWithin(t, r, quietPeriod) {
			if bodyOf(m) != "probe" {
				t.Fatalf("unexpected message %q while waiting for probes", bodyOf(m))
			}
			_ = r.AcceptMessage(caseContext(t), m)
		}
	}
}
