package fakebroker_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/fakebroker"
	"github.com/amqp1kit/amqp1kit/internal/frameclient"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// client is one go-amqp connection with one session.
type client struct {
	t    *testing.T
	conn *amqp.Conn
	sess *amqp.Session
}

func connect(t *testing.T, url string) *client {
	t.Helper()
	return connectAs(t, url, "")
}

func connectAs(t *testing.T, url, container string) *client {
	t.Helper()
	ctx := testCtx(t)
	conn, err := amqp.Dial(ctx, url, &amqp.ConnOptions{ContainerID: container})
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	sess, err := conn.NewSession(ctx, nil)
	require.NoError(t, err)
	return &client{t: t, conn: conn, sess: sess}
}

func (c *client) receiver(addr string, credit int32) *amqp.Receiver {
	c.t.Helper()
	r, err := c.sess.NewReceiver(testCtx(c.t), addr, &amqp.ReceiverOptions{Credit: credit})
	require.NoError(c.t, err)
	return r
}

func (c *client) sender(addr string) *amqp.Sender {
	c.t.Helper()
	s, err := c.sess.NewSender(testCtx(c.t), addr, nil)
	require.NoError(c.t, err)
	return s
}

// presettled is a sender whose every delivery is sent settled, on a link of the default
// (mixed) mode, as oslo sends casts: qpidd answers a sending link that asks for
// snd-settle-mode settled with mixed, and go-amqp refuses such a link.
type presettled struct{ *amqp.Sender }

// Send sends m settled.
func (p presettled) Send(ctx context.Context, m *amqp.Message, _ *amqp.SendOptions) error {
	return p.Sender.Send(ctx, m, &amqp.SendOptions{Settled: true})
}

func (c *client) presettledSender(addr string) presettled {
	c.t.Helper()
	return presettled{c.sender(addr)}
}

func msg(body string) *amqp.Message { return amqp.NewMessage([]byte(body)) }

func durable(body string) *amqp.Message {
	m := amqp.NewMessage([]byte(body))
	m.Header = &amqp.MessageHeader{Durable: true}
	return m
}

// send sends messages and requires each to be accepted.
// sender is a go-amqp sender or a presettled one.
type sender interface {
	Send(ctx context.Context, m *amqp.Message, opts *amqp.SendOptions) error
}

func send(t *testing.T, s sender, msgs ...*amqp.Message) {
	t.Helper()
	for _, m := range msgs {
		require.NoError(t, s.Send(testCtx(t), m, nil))
	}
}

// receive takes one message and returns its body.
func receive(t *testing.T, r *amqp.Receiver) (*amqp.Message, string) {
	t.Helper()
	m, err := r.Receive(testCtx(t), nil)
	require.NoError(t, err)
	return m, string(m.GetData())
}

// deliveryCount is the header's delivery-count (0 without a header).
func deliveryCount(m *amqp.Message) uint32 {
	if m.Header == nil {
		return 0
	}
	return m.Header.DeliveryCount
}

func accept(t *testing.T, r *amqp.Receiver, m *amqp.Message) {
	t.Helper()
	require.NoError(t, r.AcceptMessage(testCtx(t), m))
}

// requireNothing checks that r gets no message for a short while.
func requireNothing(t *testing.T, r *amqp.Receiver) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	m, err := r.Receive(ctx, nil)
	require.Error(t, err, "unexpected message %q", func() string {
		if m == nil {
			return ""
		}
		return string(m.GetData())
	}())
}

// requireNoCredit checks that a go-amqp Send gave up for want of credit: go-amqp
// reports its context expiring while it waits for credit as a local
// amqp:link:transfer-limit-exceeded.
func requireNoCredit(t *testing.T, err error) {
	t.Helper()
	var ae *amqp.Error
	require.ErrorAs(t, err, &ae)
	require.Equal(t, amqp.ErrCondTransferLimitExceeded, ae.Condition, "want no credit, got %v", err)
}

func waitConsumers(t *testing.T, b *fakebroker.Broker, addr string, n int) {
	t.Helper()
	require.NoError(t, b.WaitForConsumers(testCtx(t), addr, n))
}

func waitDepth(t *testing.T, b *fakebroker.Broker, addr string, n int) {
	t.Helper()
	require.NoError(t, b.WaitForDepth(testCtx(t), addr, n), b.Dump())
}

// clock is a virtual clock for Options.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestOpenPropertiesSayQpidd(t *testing.T) {
	b := fakebroker.RunT(t, nil)
	props := connect(t, b.URL()).conn.Properties()
	require.Equal(t, "qpid-cpp", props["product"], "the oslo.messaging driver picks legacy addressing for qpid-cpp")
	for _, k := range []string{"version", "platform", "host"} {
		require.IsType(t, "", props[k], k)
	}
	require.NotEmpty(t, props["version"])
}

func TestNodesByPattern(t *testing.T) {
	b := fakebroker.RunT(t, nil)
	for addr, want := range map[string]fakebroker.Kind{
		"unicast.openstack.compute":             fakebroker.Queue,
		"exclusive.openstack.compute.node1":     fakebroker.Queue,
		"unicast.openstack.notifications.info":  fakebroker.Queue,
		"broadcast.openstack.compute.all":       fakebroker.Topic,
		"my.unicast.thing":                      fakebroker.Queue, // unanchored
		"openstack.org/om/rpc/anycast/x/y":      "",
		"openstack.org/om/notify/anycast/x/n.i": "",
	} {
		kind, ok := b.Kind(addr)
		require.Equal(t, want != "", ok, addr)
		require.Equal(t, want, kind, addr)
	}

	// Queue vs topic decide what a consumer sees: competing consumers on a queue, a
	// copy for every subscriber on a topic.
	ctx := testCtx(t)
	c := connect(t, b.URL())
	q1, q2 := c.receiver("unicast.q", 10), c.receiver("unicast.q", 10)
	t1, t2 := c.receiver("broadcast.t.all", 10), c.receiver("broadcast.t.all", 10)
	waitConsumers(t, b, "unicast.q", 2)
	waitConsumers(t, b, "broadcast.t.all", 2)
	send(t, c.sender("unicast.q"), msg("q"))
	send(t, c.sender("broadcast.t.all"), msg("t"))
	for _, r := range []*amqp.Receiver{t1, t2} {
		_, body := receive(t, r)
		require.Equal(t, "t", body)
	}
	got := 0
	for _, r := range []*amqp.Receiver{q1, q2} {
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		m, err := r.Receive(pctx, nil)
		cancel()
		if err == nil {
			require.Equal(t, "q", string(m.GetData()))
			got++
		}
	}
	require.Equal(t, 1, got, "a queue message goes to one consumer")
	qi, _ := b.Node("unicast.q")
	ti, _ := b.Node("broadcast.t.all")
	require.Equal(t, fakebroker.Queue, qi.Kind)
	require.Equal(t, "unicast", qi.Pattern)
	require.Equal(t, fakebroker.Topic, ti.Kind)
	require.Equal(t, uint64(2), b.Stats().Enqueued-1, "the topic message was stored once per subscriber")
}

func TestCustomPatternsLongestWins(t *testing.T) {
	b := fakebroker.RunT(t, &fakebroker.Options{
		QueuePatterns: []string{`^jobs\.`, `q`},
		TopicPatterns: []string{`^jobs\.events\.`, `^t$`},
	})
	cases := map[string]fakebroker.Kind{
		"jobs.build":         fakebroker.Queue,
		"jobs.events.push":   fakebroker.Topic, // the longer pattern wins
		"t":                  fakebroker.Topic,
		"at":                 "", // ^t$ is anchored
		"xqx":                fakebroker.Queue,
		"unicast.openstack":  "", // custom patterns replace the defaults
		"broadcast.x.y.all":  "",
		"myjobs.events.push": "",
	}
	for addr, want := range cases {
		kind, ok := b.Kind(addr)
		require.Equal(t, want != "", ok, addr)
		require.Equal(t, want, kind, addr)
	}
}

func TestUnknownNodeRefusedNotFound(t *testing.T) {
	b := fakebroker.RunT(t, nil)
	c := connect(t, b.URL())
	for _, attach := range []func() error{
		func() error { _, err := c.sess.NewReceiver(testCtx(t), "nowhere", nil); return err },
		func() error { _, err := c.sess.NewSender(testCtx(t), "nowhere", nil); return err },
	} {
		err := attach()
		var ae *amqp.Error
		require.ErrorAs(t, err, &ae)
		require.Equal(t, amqp.ErrCondNotFound, ae.Condition)
		require.Equal(t, "Node not found: nowhere", ae.Description, "qpidd's words")
	}
	// The session survives and pattern addresses work.
	c.receiver("unicast.ok", 1)
	_, ok := b.Node("nowhere")
	require.False(t, ok)
}

func TestStoreWithNoConsumerThenDeliver(t *testing.T) {
	b := fakebroker.RunT(t, nil)
	addr := "unicast.openstack.notifications.info"
	snd := connect(t, b.URL()).sender(addr)
	// Each send returns once the broker said accepted: stored, no consumer exists.
	send(t, snd, msg("n0"), msg("n1"), msg("n2"))
	require.Equal(t, 3, b.Depth(addr))
	peek := b.Messages(addr)
	require.Len(t, peek, 3)
	for i, m := range peek {
		require.Equal(t, []byte(fmt.Sprintf("n%d", i)), m.Body)
		require.False(t, m.Acquired)
	}
	require.Equal(t, 3, b.Depth(addr), "peeking consumes nothing")

	rcv := connect(t, b.URL()).receiver(addr, 10)
	for i := range 3 {
		m, body := receive(t, rcv)
		require.Equal(t, fmt.Sprintf("n%d", i), body)
		if i == 0 {
			// Delivered but not settled: still stored, acquired.
			require.Eventually(t, func() bool {
				ms := b.Messages(addr)
				return len(ms) == 3 && ms[0].Acquired
			}, 5*time.Second, 5*time.Millisecond)
		}
		accept(t, rcv, m)
	}
	waitDepth(t, b, addr, 0)
	info, _ := b.Node(addr)
	require.Equal(t, uint64(3), info.Counts.Enqueued)
	require.Equal(t, uint64(3), info.Counts.Delivered)
	require.Equal(t, uint64(3), info.Counts.Acked)
	require.Equal(t, 1, info.Senders)
	require.Equal(t, 1, info.Consumers)
}

func TestSenderSettledBeforeConsumerHasIt(t *testing.T) {
	b := fakebroker.RunT(t, nil)
	ctx := testCtx(t)
	c := connect(t, b.URL())
	rcv := c.receiver("unicast.twostage", 1)
	waitConsumers(t, b, "unicast.twostage", 1)
	receipt, err := c.sender("unicast.twostage").SendWithReceipt(ctx, msg("x"), nil)
	require.NoError(t, err)
	state, err := receipt.Wait(ctx)
	require.NoError(t, err)
	require.IsType(t, &amqp.StateAccepted{}, state, "accepted when stored, before the consumer settles")
	m, _ := receive(t, rcv)
	require.Equal(t, uint64(0), b.Stats().Acked, "the consumer has not settled yet")
	accept(t, rcv, m)
	require.NoError(t, b.WaitForStats(ctx, func(c fakebroker.Counts) bool { return c.Acked == 1 }))
}

func TestCompetingConsumers(t *testing.T) {
	b := fakebroker.RunT(t, nil)
	addr := "exclusive.openstack.compute.node1"
	c := connect(t, b.URL())
	r1, r2 := c.receiver(addr, 5), c.receiver(addr, 5)
	waitConsumers(t, b, addr, 2)
	const n = 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[string]int{}
	per := map[*amqp.Receiver]int{}
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	for _, r := range []*amqp.Receiver{r1, r2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				m, err := r.Receive(ctx, nil)
				if err != nil {
					return
				}
				mu.Lock()
				seen[string(m.GetData())]++
				per[r]++
				mu.Unlock()
				if err := r.AcceptMessage(ctx, m); err != nil {
					return
				}
			}
		}()
	}
	snd := c.sender(addr)
	for i := range n {
		send(t, snd, msg(fmt.Sprint(i)))
	}
	require.NoError(t, b.WaitForStats(ctx, func(c fakebroker.Counts) bool { return c.Acked == n }))
	cancel()
	wg.Wait()
	require.Len(t, seen, n)
	for body, k := range seen {
		require.Equal(t, 1, k, "message %s delivered %d times", body, k)
	}
	require.Greater(t, per[r1], 0, "both consumers take messages")
	require.Greater(t, per[r2], 0, "both consumers take messages")
}

func TestTopicWithoutSubscriberDrops(t *testing.T) {
	b := fakebroker.RunT(t, nil)
	addr := "broadcast.openstack.compute.all"
	snd := connect(t, b.URL()).sender(addr)
	send(t, snd, msg("lost")) // accepted, as qpidd, and gone
	require.Equal(t, uint64(1), b.Stats().Dropped)
	require.Zero(t, b.Depth(addr))
	rcv := connect(t, b.URL()).receiver(addr, 10)
	waitConsumers(t, b, addr, 1)
	requireNothing(t, rcv)
	send(t, snd, msg("kept"))
	_, body := receive(t, rcv)
	require.Equal(t, "kept", body)
	// The subscription queue is named after the link, and goes with it.
	cons := b.Consumers(addr)
	require.Len(t, cons, 1)
	require.Equal(t, addr, cons[0].Address)
	require.True(t, strings.HasSuffix(cons[0].Queue, "_"+rcv.LinkName()), cons[0].Queue)
	sub, ok := b.Node(cons[0].Queue)
	require.True(t, ok)
	require.True(t, sub.Temporary)
	require.Equal(t, addr, sub.Topic)
	require.NoError(t, rcv.Close(testCtx(t)))
	require.Eventually(t, func() bool { _, ok := b.Node(cons[0].Queue); return !ok }, 5*time.Second, 5*time.Millisecond)
}

func TestReleaseKeepsPositionAndCount(t *testing.T) {
	b := fakebroker.RunT(t, nil)
	addr := "unicast.rel"
	c := connect(t, b.URL())
	send(t, c.sender(addr), msg("m0"), msg("m1"), msg("m2"))
	rcv := c.receiver(addr, 1)
	m, body := receive(t, rcv)
	require.Equal(t, "m0", body)
	require.NoError(t, rcv.ReleaseMessage(testCtx(t), m))
	m, body = receive(t, rcv)
	require.Equal(t, "m0", body, "a released message keeps its place at the head")
	require.Zero(t, deliveryCount(m), "released does not raise the delivery-count")
	accept(t, rcv, m)
	info, _ := b.Node(addr)
	require.Equal(t, uint64(1), info.Counts.Released)
	require.Equal(t, uint64(1), info.Counts.Redelivered)
}

func TestModifiedRaisesCountAndAvoidsConsumer(t *testing.T) {
	b := fakebroker.RunT(t, nil)
	ctx := testCtx(t)
	addr := "unicast.mod"
	c := connect(t, b.URL())
	send(t, c.sender(addr), msg("m0"), msg("m1"))
	a := c.receiver(addr, 1)
	m, body := receive(t, a)
	require.Equal(t, "m0", body)
	require.NoError(t, a.ModifyMessage(ctx, m, &amqp.ModifyMessageOptions{DeliveryFailed: true}))
	m, body = receive(t, a)
	require.Equal(t, "m0", body)
	require.Equal(t, uint32(1), deliveryCount(m), "delivery-failed raises the delivery-count")
	require.Equal(t, uint32(1), b.Messages(addr)[0].DeliveryCount)

	// undeliverable-here: this consumer gets the next message; another gets m0.
	require.NoError(t, a.ModifyMessage(ctx, m, &amqp.ModifyMessageOptions{UndeliverableHere: true,
		Annotations: amqp.Annotations{"x-opt-note": "bounced"}}))
	m1, body := receive(t, a)
	require.Equal(t, "m1", body, "a consumer that said undeliverable-here does not get the message again")
	accept(t, a, m1)
	requireNothing(t, a)
	other := connect(t, b.URL()).receiver(addr, 1)
	m, body = receive(t, other)
	require.Equal(t, "m0", body)
	require.Equal(t, uint32(1), deliveryCount(m))
	require.Equal(t, "bounced", m.Annotations["x-opt-note"], "modified message-annotations are merged")
	accept(t, other, m)
	require.NoError(t, b.WaitForStats(ctx, func(c fakebroker.Counts) bool { return c.Acked == 2 }))
	info, _ := b.Node(addr)
	require.Equal(t, uint64(2), info.Counts.Modified)
}

func TestRejectDropsOrDeadLetters(t *testing.T) {
	for _, dlq := range []string{"", "dead.letters"} {
		t.Run("dlq="+dlq, func(t *testing.T) {
			b := fakebroker.RunT(t, &fakebroker.Options{DeadLetterQueue: dlq})
			addr := "unicast.rej"
			c := connect(t, b.URL())
			send(t, c.sender(addr), msg("bad"))
			rcv := c.receiver(addr, 1)
			m, _ := receive(t, rcv)
			require.NoError(t, rcv.RejectMessage(testCtx(t), m, &amqp.Error{Condition: "x:bad", Description: "no"}))
			waitDepth(t, b, addr, 0)
			requireNothing(t, rcv)
			st := b.Stats()
			require.Equal(t, uint64(1), st.Rejected)
			if dlq == "" {
				require.Zero(t, st.DeadLettered)
				return
			}
			require.Equal(t, uint64(1), st.DeadLettered)
			require.Equal(t, 1, b.Depth(dlq))
			_, body := receive(t, c.receiver(dlq, 1))
			require.Equal(t, "bad", body)
		})
	}
}

func TestRedeliveryAfterConsumerDrops(t *testing.T) {
	b := fakebroker.RunT(t, nil)
	addr := "unicast.lossy"
	send(t, connect(t, b.URL()).sender(addr), msg("a"), msg("b"), msg("c"), msg("d"))
	doomed := connectAs(t, b.URL(), "doomed")
	rcv := doomed.receiver(addr, 10)
	m, _ := receive(t, rcv)
	accept(t, rcv, m) // "a" is done
	for range 3 {
		receive(t, rcv) // b, c, d held unsettled
	}
	require.Eventually(t, func() bool { n, _ := b.Node(addr); return n.Acquired == 3 }, 5*time.Second, 5*time.Millisecond)
	cons := b.Consumers(addr)
	require.Len(t, cons, 1)
	require.Equal(t, "doomed", cons[0].Container)
	require.Equal(t, 3, cons[0].Unacked)
	require.True(t, b.DropConnection(cons[0].Conn))         // mid-way, no AMQP close
	require.NoError(t, b.WaitForConnections(testCtx(t), 1)) // the producer's is left

	heir := connect(t, b.URL()).receiver(addr, 10)
	for _, want := range []string{"b", "c", "d"} {
		m, body := receive(t, heir)
		require.Equal(t, want, body, "redelivered in their order")
		require.Equal(t, uint32(1), deliveryCount(m), "a delivery lost with its consumer counts as an attempt")
		accept(t, heir, m)
	}
	waitDepth(t, b, addr, 0)
	st := b.Stats()
	require.Equal(t, uint64(3), st.Redelivered)
	require.Equal(t, uint64(4), st.Acked)
}

func TestExpiryByTTLOnVirtualClock(t *testing.T) {
	clk := newClock()
	b := fakebroker.RunT(t, &fakebroker.Options{Now: clk.Now})
	addr := "unicast.ttl"
	c := connect(t, b.URL())
	short := msg("short")
	short.Header = &amqp.MessageHeader{TTL: time.Second}
	long := msg("long")
	long.Header = &amqp.MessageHeader{TTL: time.Hour}
	// The Python driver's bogus absolute-expiry-time (monotonic seconds: 1970) is
	// ignored by default, as by qpidd.
	bogus := time.Unix(12345, 0)
	python := msg("python")
	python.Properties = &amqp.MessageProperties{AbsoluteExpiryTime: &bogus}
	send(t, c.sender(addr), short, long, python)
	require.Equal(t, 3, b.Depth(addr))
	require.False(t, b.Messages(addr)[0].Expires.IsZero())
	clk.Advance(2 * time.Second)
	require.Equal(t, 2, b.Depth(addr), "the ttl passed on the broker's clock")
	require.Equal(t, uint64(1), b.Stats().Expired)
	rcv := c.receiver(addr, 10)
	for _, want := range []string{"long", "python"} {
		m, body := receive(t, rcv)
		require.Equal(t, want, body)
		accept(t, rcv, m)
	}

	// An expired message is not delivered even when a consumer reaches it before
	// anything inspected the queue.
	other := "unicast.ttl2"
	send(t, c.sender(other), short, msg("after"))
	clk.Advance(2 * time.Second)
	_, body := receive(t, c.receiver(other, 10))
	require.Equal(t, "after", body)
	require.Equal(t, uint64(2), b.Stats().Expired)
}

func TestAbsoluteExpiryOptIn(t *testing.T) {
	clk := newClock()
	b := fakebroker.RunT(t, &fakebroker.Options{Now: clk.Now, AbsoluteExpiry: true})
	addr := "unicast.abs"
	at := clk.Now().Add(time.Minute)
	m := msg("abs")
	m.Properties = &amqp.MessageProperties{AbsoluteExpiryTime: &at}
	send(t, connect(t, b.URL()).sender(addr), m)
	require.Equal(t, 1, b.Depth(addr))
	clk.Advance(2 * time.Minute)
	require.Zero(t, b.Depth(addr))
	require.Equal(t, uint64(1), b.Stats().Expired)
}

func TestDynamicNodes(t *testing.T) {
	b := fakebroker.RunT(t, nil)
	ctx := testCtx(t)
	c := connectAs(t, b.URL(), "client-1")
	reply, err := c.sess.NewReceiver(ctx, "", &amqp.ReceiverOptions{DynamicAddress: true, Credit: 10, Name: "reply"})
	require.NoError(t, err)
	require.Equal(t, "client-1_reply", reply.Address(), "qpidd names a dynamic node <container-id>_<link-name>")
	info, ok := b.Node(reply.Address())
	require.True(t, ok)
	require.True(t, info.Dynamic)
	require.True(t, info.Temporary)

	// The same container and link name get the same node (qpidd: the name is taken).
	again, err := connectAs(t, b.URL(), "client-1").sess.NewReceiver(ctx, "", &amqp.ReceiverOptions{DynamicAddress: true, Name: "reply", Credit: -1})
	require.NoError(t, err)
	require.Equal(t, reply.Address(), again.Address())

	// A targeted sender to it, as an RPC server replies (pre-settled).
	srv := connect(t, b.URL())
	rs := srv.presettledSender(reply.Address())
	send(t, rs, msg("reply"))
	_, body := receive(t, reply)
	require.Equal(t, "reply", body)

	// The node lives while a link uses it (qpidd's delete-if-unused), then goes; a
	// sender to it is refused.
	require.NoError(t, reply.Close(ctx))
	require.NoError(t, again.Close(ctx))
	_, ok = b.Node("client-1_reply")
	require.True(t, ok, "the sender still uses it")
	require.NoError(t, rs.Close(ctx))
	require.Eventually(t, func() bool { _, ok := b.Node("client-1_reply"); return !ok }, 5*time.Second, 5*time.Millisecond)
	_, err = srv.sess.NewSender(ctx, "client-1_reply", nil)
	var ae *amqp.Error
	require.ErrorAs(t, err, &ae)
	require.Equal(t, amqp.ErrCondNotFound, ae.Condition)
}

func TestAnonymousRelay(t *testing.T) {
	// As qpidd: a message goes to the existing node its to names; the relay creates
	// no node, and a message for none (or with no to) is dropped, accepted all the same.
	b := fakebroker.RunT(t, nil)
	ctx := testCtx(t)
	kept := connect(t, b.URL()).receiver("unicast.kept", -1) // credit by hand
	anon := connect(t, b.URL()).sender("")
	for _, to := range []string{"unicast.kept", "unicast.never-attached", "nowhere", ""} {
		m := &amqp.Message{Data: [][]byte{[]byte(to)}}
		if to != "" {
			m.Properties = &amqp.MessageProperties{To: &to}
		}
		receipt, err := anon.SendWithReceipt(ctx, m, nil)
		require.NoError(t, err)
		state, err := receipt.Wait(ctx)
		require.NoError(t, err)
		require.IsType(t, &amqp.StateAccepted{}, state, to)
	}
	require.Equal(t, 1, b.Depth("unicast.kept"))
	_, ok := b.Node("unicast.never-attached")
	require.False(t, ok, "the relay creates no node")
	require.Equal(t, uint64(3), b.Stats().Dropped)
	require.NoError(t, kept.IssueCredit(1))
	_, body := receive(t, kept)
	require.Equal(t, "unicast.kept", body)
}

// TestOsloShapedRPC plays the links of the Python driver over legacy addressing (its
// wire behaviour is in docs/oslo-amqp1-wire.md): a server with three subscriptions
// (exclusive and unicast queues, a broadcast topic), links with snd-settle-mode
// mixed, a client whose reply link has a dynamic source, calls with ttl and the bogus
// absolute-expiry-time, pre-settled casts and replies.
func TestOsloShapedRPC(t *testing.T) {
	b := fakebroker.RunT(t, nil)
	ctx := testCtx(t)
	mixed := amqp.SenderSettleModeMixed
	server := connect(t, b.URL())
	var subs []*amqp.Receiver
	for _, addr := range []string{"exclusive.openstack.compute.node1", "broadcast.openstack.compute.all", "unicast.openstack.compute"} {
		r, err := server.sess.NewReceiver(ctx, addr, &amqp.ReceiverOptions{Credit: 100, RequestedSenderSettleMode: &mixed})
		require.NoError(t, err)
		subs = append(subs, r)
	}
	require.NoError(t, b.WaitForPrefix(ctx, "", 3))

	cl := connect(t, b.URL())
	reply, err := cl.sess.NewReceiver(ctx, "", &amqp.ReceiverOptions{DynamicAddress: true, Credit: 200, TargetAddress: "rpc-response"})
	require.NoError(t, err)
	require.NotEmpty(t, reply.Address())
	bogus := time.Unix(100000, 0)
	replyTo := reply.Address()
	for i, addr := range []string{"unicast.openstack.compute", "exclusive.openstack.compute.node1"} {
		id := fmt.Sprintf("%032x", i)
		call := &amqp.Message{
			Header:     &amqp.MessageHeader{TTL: 30 * time.Second},
			Properties: &amqp.MessageProperties{MessageID: id, ReplyTo: &replyTo, To: &addr, AbsoluteExpiryTime: &bogus},
			Value:      `{"request": {"method": "ping"}, "context": {}}`,
		}
		send(t, cl.sender(addr), call)
		in := subs[2]
		if i == 1 {
			in = subs[0]
		}
		req, err := in.Receive(ctx, nil)
		require.NoError(t, err)
		require.NoError(t, in.AcceptMessage(ctx, req))
		corr := req.Properties.MessageID
		rs := server.presettledSender(*req.Properties.ReplyTo)
		send(t, rs, &amqp.Message{Properties: &amqp.MessageProperties{CorrelationID: corr}, Value: `{"response": "pong"}`})
		resp, err := reply.Receive(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, id, resp.Properties.CorrelationID)
		require.NoError(t, reply.AcceptMessage(ctx, resp))
	}
	// A fanout cast, pre-settled, reaches the broadcast subscription.
	send(t, cl.presettledSender("broadcast.openstack.compute.all"), &amqp.Message{Value: `{"request": {"method": "cast"}}`})
	m, err := subs[1].Receive(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, `{"request": {"method": "cast"}}`, m.Value)
}

func TestFaultHooks(t *testing.T) {
	b := fakebroker.RunT(t, nil)
	ctx := testCtx(t)
	addr := "unicast.f"
	snd := connect(t, b.URL()).sender(addr)
	send(t, snd, msg("before"))

	b.StopCredit()
	// The sender keeps the credit it was granted (qpidd never takes it back) ...
	for _, l := range b.Links() {
		if l.Role == "sender" {
			require.Equal(t, uint32(500), l.Credit, "credit once granted is kept (topped up after the first message)")
		}
	}
	send(t, snd, msg("on kept credit"))
	// ... and a link attached now gets none at all: its send blocks.
	late := connect(t, b.URL()).sender(addr)
	sctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	requireNoCredit(t, late.Send(sctx, msg("blocked"), nil))
	cancel()
	b.ResumeCredit()
	send(t, late, msg("after"))
	send(t, snd, msg("again"))
	require.Equal(t, 4, b.Depth(addr))

	require.Equal(t, 2, b.Connections())
	b.CloseConnections()
	require.NoError(t, b.WaitForConnections(ctx, 0))
	require.Error(t, snd.Send(ctx, msg("x"), nil))
	c := connect(t, b.URL())
	c.receiver(addr, 1)
	b.DropConnections()
	require.NoError(t, b.WaitForConnections(ctx, 0))
	require.Equal(t, 4, b.Depth(addr), "stored messages survive their clients")
	require.Equal(t, 4, b.Purge(addr))
	require.Zero(t, b.Depth(addr))
	require.Contains(t, b.Dump(), "queue unicast.f depth=0")
}

func TestRestartWithoutJournalKeepsEverything(t *testing.T) {
	b := fakebroker.RunT(t, nil)
	addr := "unicast.mem"
	send(t, connect(t, b.URL()).sender(addr), msg("plain"), durable("durable"))
	before := b.Addr()
	require.NoError(t, b.Restart())
	require.Equal(t, before, b.Addr(), "same port")
	require.Equal(t, 2, b.Depth(addr))
	rcv := connect(t, b.URL()).receiver(addr, 10)
	for _, want := range []string{"plain", "durable"} {
		m, body := receive(t, rcv)
		require.Equal(t, want, body)
		accept(t, rcv, m)
	}
}

func TestTraceSeesFrames(t *testing.T) {
	var mu sync.Mutex
	var frames []string
	b := fakebroker.RunT(t, &fakebroker.Options{Trace: func(f fakebroker.Frame) {
		mu.Lock()
		frames = append(frames, f.Performative)
		mu.Unlock()
		_ = f.String()
	}})
	connect(t, b.URL()).receiver("unicast.t", 1)
	mu.Lock()
	defer mu.Unlock()
	require.Contains(t, frames, "open")
	require.Contains(t, frames, "attach")
}

func TestNodesListing(t *testing.T) {
	b := fakebroker.RunT(t, &fakebroker.Options{Queues: []string{"fixed"}, Topics: []string{"news"}})
	connect(t, b.URL()).receiver("news", 1)
	waitConsumers(t, b, "news", 1)
	kinds := map[string]fakebroker.Kind{}
	var sub fakebroker.NodeInfo
	for _, n := range b.Nodes() {
		kinds[n.Name] = n.Kind
		if n.Topic != "" {
			sub = n
		}
	}
	require.Len(t, kinds, 3)
	require.Equal(t, fakebroker.Queue, kinds["fixed"])
	require.Equal(t, fakebroker.Topic, kinds["news"])
	require.Equal(t, "news", sub.Topic)
	require.Equal(t, fakebroker.Queue, sub.Kind)
	require.True(t, sub.Temporary)
}

func TestConsumerSettleModes(t *testing.T) {
	b := fakebroker.RunT(t, nil)
	ctx := testCtx(t)
	c := connect(t, b.URL())
	snd := c.sender("unicast.modes")

	// A consumer that asks for pre-settled messages takes them at most once: they
	// leave the queue when sent.
	settled := amqp.SenderSettleModeSettled
	pre, err := c.sess.NewReceiver(ctx, "unicast.modes", &amqp.ReceiverOptions{Credit: 1, RequestedSenderSettleMode: &settled})
	require.NoError(t, err)
	send(t, snd, msg("pre"))
	_, body := receive(t, pre)
	require.Equal(t, "pre", body)
	waitDepth(t, b, "unicast.modes", 0)
	require.Equal(t, uint64(1), b.Stats().Acked)
	require.NoError(t, pre.Close(ctx))

	// rcv-settle-mode second is answered first, as qpidd answers it, and go-amqp
	// refuses the link.
	second := amqp.ReceiverSettleModeSecond
	_, err = c.sess.NewReceiver(ctx, "unicast.modes", &amqp.ReceiverOptions{Credit: 1, SettlementMode: &second})
	require.ErrorContains(t, err, `receiver settlement mode "second" requested, received "first"`)
}

func TestDrainGivesWhatIsStored(t *testing.T) {
	b := fakebroker.RunT(t, nil)
	c := connect(t, b.URL())
	send(t, c.sender("unicast.drain"), msg("a"), msg("b"))
	// By hand: go-amqp v1.7 sends its drain with link-credit 0, which qpidd (and so the
	// broker) does not answer.
	fc, err := frameclient.Dial(b.Addr())
	require.NoError(t, err)
	defer fc.Close()
	_, err = fc.Open(&wire.Open{ContainerID: "drain"})
	require.NoError(t, err)
	_, err = fc.Begin(0, &wire.Begin{IncomingWindow: 100, OutgoingWindow: 100})
	require.NoError(t, err)
	_, err = fc.Attach(0, &wire.Attach{Name: "r", Role: wire.RoleReceiver, Source: &wire.Source{Address: "unicast.drain"}, Target: &wire.Target{}})
	require.NoError(t, err)
	h, dc, credit := uint32(0), uint32(0), uint32(5)
	require.NoError(t, fc.Write(0, &wire.Flow{IncomingWindow: 100, OutgoingWindow: 100, Handle: &h, DeliveryCount: &dc, LinkCredit: &credit, Drain: true}))
	for range 2 {
		_, _, err := frameclient.Expect[*wire.Transfer](fc)
		require.NoError(t, err)
	}
	// Nothing more is stored: the drain gives back the 3 credits left at once.
	f, _, err := frameclient.Expect[*wire.Flow](fc)
	require.NoError(t, err)
	require.True(t, f.Drain)
	require.Equal(t, uint32(5), *f.DeliveryCount)
	require.Equal(t, uint32(0), *f.LinkCredit)
	require.Equal(t, uint32(0), b.Consumers("unicast.drain")[0].Credit)
}

// A consumer's max-message-size is not a limit on what it gets: qpidd 1.39.0 delivers
// a larger message anyway, and so does the fake.
func TestConsumerMaxMessageSizeIgnored(t *testing.T) {
	b := fakebroker.RunT(t, nil)
	c := connect(t, b.URL())
	big := strings.Repeat("x", 500)
	send(t, c.sender("unicast.big"), msg(big))
	// By hand: go-amqp refuses a message above its own max-message-size.
	fc, err := frameclient.Dial(b.Addr())
	require.NoError(t, err)
	defer fc.Close()
	_, err = fc.Open(&wire.Open{ContainerID: "small", MaxFrameSize: 65536})
	require.NoError(t, err)
	_, err = fc.Begin(0, &wire.Begin{IncomingWindow: 100, OutgoingWindow: 100})
	require.NoError(t, err)
	answer, err := fc.Attach(0, &wire.Attach{Name: "r", Role: wire.RoleReceiver, Source: &wire.Source{Address: "unicast.big"},
		Target: &wire.Target{}, MaxMessageSize: 100})
	require.NoError(t, err)
	require.Zero(t, answer.MaxMessageSize, "the broker announces no limit of its own")
	h, dc, credit := uint32(0), uint32(0), uint32(1)
	require.NoError(t, fc.Write(0, &wire.Flow{IncomingWindow: 100, OutgoingWindow: 100, Handle: &h, DeliveryCount: &dc, LinkCredit: &credit}))
	_, f, err := frameclient.Expect[*wire.Transfer](fc)
	require.NoError(t, err)
	require.Greater(t, len(f.Payload), 500, "the 500-byte body came, above the consumer's max-message-size of 100")
	require.Contains(t, string(f.Payload), big)
}
