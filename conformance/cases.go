package conformance

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"time"

	amqp "github.com/Azure/go-amqp"
)

// cases are the suite, by name. Names are stable: harnesses refer to them in
// Differences.
var cases = map[string]func(t testingT, h *Harness){
	"OpenAdvertisesKind":                 openAdvertisesKind,
	"SendReceiveAccepted":                sendReceiveAccepted,
	"PreSettledDelivery":                 preSettledDelivery,
	"OrderKept":                          orderKept,
	"MultiFrameMessage":                  multiFrameMessage,
	"RouterSettlesEndToEnd":              routerSettlesEndToEnd,
	"RouterGivesNoCreditWithoutConsumer": routerGivesNoCreditWithoutConsumer,
	"BrokerStoresAndForwards":            brokerStoresAndForwards,
	"RejectedOutcome":                    rejectedOutcome,
	"ReleasedOutcome":                    releasedOutcome,
	"ConsumerLoss":                       consumerLoss,
	"CompetingConsumers":                 competingConsumers,
	"MulticastCopies":                    multicastCopies,
	"TopicDropsWithoutSubscriber":        topicDropsWithoutSubscriber,
	"MulticastSenderWaitsForConsumer":    multicastSenderWaitsForConsumer,
	"CreditWithoutConsumer":              creditWithoutConsumer,
	"DynamicReplyAddress":                dynamicReplyAddress,
	"AnonymousRelay":                     anonymousRelay,
	"DrainWithCreditEchoed":              drainWithCreditEchoed,
	"DrainWithNoCreditNotAnswered":       drainWithNoCreditNotAnswered,
	"ModifiedOutcome":                    modifiedOutcome,
	"SettleModesAnswered":                settleModesAnswered,
	"IdleConnectionKeptAlive":            idleConnectionKeptAlive,
	"BrokerExpiresTTL":                   brokerExpiresTTL,
}

func init() {
	for _, more := range []map[string]func(testingT, *Harness){brokerCases, routerCases, linkRouteCases, fidelityCases, brokerLimitCases, anycastCases} {
		for name, c := range more {
			if _, dup := cases[name]; dup {
				panic("conformance: two cases named " + name)
			}
			cases[name] = c
		}
	}
}

// CaseNames returns the names of the suite's cases, for harnesses that list
// differences and for reports.
func CaseNames() []string {
	out := make([]string, 0, len(cases))
	for n := range cases {
		out = append(out, n)
	}
	return out
}

// openAdvertisesKind: the open frame's product property says what the peer is, as the
// oslo driver's dynamic addressing reads it: "qpid-cpp" (or nothing) means a broker
// and legacy addresses, anything else a router and routable addresses.
func openAdvertisesKind(t testingT, h *Harness) {
	c := connect(t, h)
	product, present := c.conn.Properties()["product"]
	legacy := !present || product == "qpid-cpp"
	switch {
	case h.Kind == Router && legacy:
		t.Errorf("a router advertises product %v (present: %v): the oslo driver would pick legacy addresses", product, present)
	case h.Kind == Broker && !legacy:
		t.Errorf("a broker advertises product %q: the oslo driver would pick routable addresses", product)
	}
}

// sendReceiveAccepted: an unsettled message reaches a consumer, and the sender's
// delivery ends accepted.
func sendReceiveAccepted(t testingT, h *Harness) {
	addr := h.queue("accepted")
	rcv := connect(t, h).receiver(addr, &amqp.ReceiverOptions{Credit: 10})
	snd := connect(t, h).sender(addr, nil)
	rc, err := snd.SendWithReceipt(caseContext(t), text("hello"), nil)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	m := mustReceive(t, rcv)
	if bodyOf(m) != "hello" {
		t.Fatalf("received %q, want %q", bodyOf(m), "hello")
	}
	if err := rcv.AcceptMessage(caseContext(t), m); err != nil {
		t.Fatalf("accept: %v", err)
	}
	if state := awaitReceipt(t, rc); !isAccepted(state) {
		t.Errorf("the sender's delivery ended %T, want accepted", state)
	}
}

func isAccepted(s amqp.DeliveryState) bool { _, ok := s.(*amqp.StateAccepted); return ok }

// preSettledDelivery: a message sent settled arrives (oslo casts and replies).
func preSettledDelivery(t testingT, h *Harness) {
	addr := h.queue("presettled")
	rcv := connect(t, h).receiver(addr, &amqp.ReceiverOptions{Credit: 10})
	snd := connect(t, h).sender(addr, nil)
	if err := settled(caseContext(t), snd, text("cast")); err != nil {
		t.Fatalf("send: %v", err)
	}
	if m := mustReceive(t, rcv); bodyOf(m) != "cast" {
		t.Errorf("received %q, want %q", bodyOf(m), "cast")
	}
}

// orderKept: one sender's messages reach one consumer in the order sent.
func orderKept(t testingT, h *Harness) {
	const n = 100
	addr := h.queue("order")
	rcv := connect(t, h).receiver(addr, &amqp.ReceiverOptions{Credit: n})
	snd := connect(t, h).sender(addr, nil)
	receipts := make(chan amqp.SendReceipt, n)
	sendErr := make(chan error, 1)
	ctx := caseContext(t)
	go func() {
		defer close(receipts)
		for i := range n {
			rc, err := snd.SendWithReceipt(ctx, text(fmt.Sprint(i)), nil)
			if err != nil {
				sendErr <- err
				return
			}
			receipts <- rc
		}
	}()
	for i := range n {
		m := mustReceive(t, rcv)
		if got, want := bodyOf(m), fmt.Sprint(i); got != want {
			t.Fatalf("message %d is %q: order not kept", i, got)
		}
		if err := rcv.AcceptMessage(caseContext(t), m); err != nil {
			t.Fatalf("accept: %v", err)
		}
	}
	for rc := range receipts {
		if state := awaitReceipt(t, rc); !isAccepted(state) {
			t.Fatalf("a delivery ended %T, want accepted", state)
		}
	}
	select {
	case err := <-sendErr:
		t.Fatalf("send: %v", err)
	default:
	}
}

// multiFrameMessage: a 1 MiB message, larger than any frame, arrives whole.
func multiFrameMessage(t testingT, h *Harness) {
	payload := make([]byte, 1<<20)
	_, _ = rand.Read(payload)
	addr := h.queue("large")
	rcv := connect(t, h).receiver(addr, &amqp.ReceiverOptions{Credit: 2, MaxMessageSize: 4 << 20})
	snd := connect(t, h).sender(addr, nil)
	rc, err := snd.SendWithReceipt(caseContext(t), amqp.NewMessage(payload), nil)
	if err != nil {
		t.Fatalf("send 1 MiB: %v", err)
	}
	m := mustReceive(t, rcv)
	if !bytes.Equal(m.GetData(), payload) {
		t.Fatalf("received %d bytes that differ from the %d sent", len(m.GetData()), len(payload))
	}
	if err := rcv.AcceptMessage(caseContext(t), m); err != nil {
		t.Fatalf("accept: %v", err)
	}
	if state := awaitReceipt(t, rc); !isAccepted(state) {
		t.Errorf("the sender's delivery ended %T, want accepted", state)
	}
}

// routerSettlesEndToEnd: a router settles the sender's delivery only when the
// consumer has settled it (the oslo guide's end-to-end acknowledgement).
func routerSettlesEndToEnd(t testingT, h *Harness) {
	h.needsKind(t, Router)
	addr := h.queue("e2e")
	rcv := connect(t, h).receiver(addr, &amqp.ReceiverOptions{Credit: 10})
	snd := connect(t, h).sender(addr, nil)
	rc, err := snd.SendWithReceipt(caseContext(t), text("held"), nil)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	m := mustReceive(t, rcv)
	if settledWithin(t, rc, quietPeriod) {
		t.Fatalf("the sender's delivery was settled before the consumer settled it")
	}
	if err := rcv.AcceptMessage(caseContext(t), m); err != nil {
		t.Fatalf("accept: %v", err)
	}
	if state := awaitReceipt(t, rc); !isAccepted(state) {
		t.Errorf("the sender's delivery ended %T, want the consumer's accepted", state)
	}
}

// routerGivesNoCreditWithoutConsumer: an anycast sender waits while nobody consumes,
// and is served once a consumer comes.
func routerGivesNoCreditWithoutConsumer(t testingT, h *Harness) {
	h.needsKind(t, Router)
	addr := h.queue("nocredit")
	snd := connect(t, h).sender(addr, nil)
	ctx, cancel := context.WithTimeout(caseContext(t), quietPeriod)
	err := snd.Send(ctx, text("early"), nil)
	cancel()
	if err == nil {
		t.Fatalf("a send with no consumer completed: a router has nowhere to deliver it")
	}
	rcv := connect(t, h).receiver(addr, &amqp.ReceiverOptions{Credit: 10})
	sent := make(chan error, 1)
	sctx := caseContext(t)
	go func() { sent <- snd.Send(sctx, text("later"), nil) }()
	for {
		m := mustReceive(t, rcv)
		if err := rcv.AcceptMessage(caseContext(t), m); err != nil {
			t.Fatalf("accept: %v", err)
		}
		if bodyOf(m) == "later" {
			break
		}
	}
	if err := <-sent; err != nil {
		t.Errorf("send once a consumer came: %v", err)
	}
}

// brokerStoresAndForwards: a broker accepts a message nobody consumes yet and hands
// it to the consumer that comes later.
func brokerStoresAndForwards(t testingT, h *Harness) {
	h.needsKind(t, Broker)
	addr := h.queue("stored")
	// The sender's attach makes the queue (qpidd by pattern; RabbitMQ declares a
	// /queue/ target; the Proton broker on first use).
	snd := connect(t, h).sender(addr, nil)
	rc, err := snd.SendWithReceipt(caseContext(t), text("stored"), nil)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	if state := awaitReceipt(t, rc); !isAccepted(state) {
		t.Fatalf("the broker settled the stored message %T, want accepted", state)
	}
	rcv := connect(t, h).receiver(addr, &amqp.ReceiverOptions{Credit: 10})
	m := mustReceive(t, rcv)
	if bodyOf(m) != "stored" {
		t.Fatalf("received %q, want the stored message", bodyOf(m))
	}
	_ = rcv.AcceptMessage(caseContext(t), m)
}

// rejectedOutcome: a router passes the consumer's rejected back to the sender; a
// broker, which accepted the message when storing it, drops it.
func rejectedOutcome(t testingT, h *Harness) {
	addr := h.queue("rejected")
	rcv := connect(t, h).receiver(addr, &amqp.ReceiverOptions{Credit: 10})
	snd := connect(t, h).sender(addr, nil)
	rc, err := snd.SendWithReceipt(caseContext(t), text("bad"), nil)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	m := mustReceive(t, rcv)
	if err := rcv.RejectMessage(caseContext(t), m, &amqp.Error{Condition: "amqp:invalid-field", Description: "conformance"}); err != nil {
		t.Fatalf("reject: %v", err)
	}
	state := awaitReceipt(t, rc)
	if h.Kind == Router {
		if _, ok := state.(*amqp.StateRejected); !ok {
			t.Errorf("the sender's delivery ended %T, want the consumer's rejected", state)
		}
		return
	}
	if !isAccepted(state) {
		t.Errorf("the broker settled the stored message %T, want accepted", state)
	}
	// The rejected message is gone: the next one is the next to come.
	if err := snd.Send(caseContext(t), text("next"), nil); err != nil {
		t.Fatalf("send: %v", err)
	}
	if m := mustReceive(t, rcv); bodyOf(m) != "next" {
		t.Errorf("received %q after a rejection, want the next message: a rejected message must not come back", bodyOf(m))
	}
}

// releasedOutcome: a router passes released back to the sender (oslo re-sends it); a
// broker puts the message back and delivers it again.
func releasedOutcome(t testingT, h *Harness) {
	if h.Kind == Broker {
		h.needs(t, Redelivery)
	}
	addr := h.queue("released")
	rcv := connect(t, h).receiver(addr, &amqp.ReceiverOptions{Credit: 10})
	snd := connect(t, h).sender(addr, nil)
	rc, err := snd.SendWithReceipt(caseContext(t), text("again"), nil)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	m := mustReceive(t, rcv)
	if err := rcv.ReleaseMessage(caseContext(t), m); err != nil {
		t.Fatalf("release: %v", err)
	}
	state := awaitReceipt(t, rc)
	if h.Kind == Router {
		if _, ok := state.(*amqp.StateReleased); !ok {
			t.Errorf("the sender's delivery ended %T, want the consumer's released", state)
		}
		return
	}
	if !isAccepted(state) {
		t.Errorf("the broker settled the stored message %T, want accepted", state)
	}
	m = mustReceive(t, rcv)
	if bodyOf(m) != "again" {
		t.Fatalf("received %q, want the released message again", bodyOf(m))
	}
	_ = rcv.AcceptMessage(caseContext(t), m)
}

// consumerLoss: a consumer that goes away holding an unsettled message loses nothing:
// a router settles the sender's delivery as not delivered (modified or released), a
// broker gives the message to another consumer.
func consumerLoss(t testingT, h *Harness) {
	if h.Kind == Broker {
		h.needs(t, Redelivery)
	}
	addr := h.queue("loss")
	doomed := connect(t, h)
	rcv := doomed.receiver(addr, &amqp.ReceiverOptions{Credit: 1})
	snd := connect(t, h).sender(addr, nil)
	rc, err := snd.SendWithReceipt(caseContext(t), text("in doubt"), nil)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	mustReceive(t, rcv)
	doomed.conn.Close() // without settling
	if h.Kind == Router {
		switch state := awaitReceipt(t, rc).(type) {
		case *amqp.StateModified, *amqp.StateReleased:
		default:
			t.Errorf("the sender's delivery ended %T when its consumer went away, want modified or released", state)
		}
		return
	}
	if state := awaitReceipt(t, rc); !isAccepted(state) {
		t.Errorf("the broker settled the stored message %T, want accepted", state)
	}
	other := connect(t, h).receiver(addr, &amqp.ReceiverOptions{Credit: 1})
	if m := mustReceive(t, other); bodyOf(m) != "in doubt" {
		t.Errorf("received %q, want the message the lost consumer held", bodyOf(m))
	}
}

// competingConsumers: consumers of one queue share its messages, each message to
// exactly one of them.
func competingConsumers(t testingT, h *Harness) {
	const n = 20
	addr := h.queue("competing")
	rcvs := []*amqp.Receiver{
		connect(t, h).receiver(addr, &amqp.ReceiverOptions{Credit: n}),
		connect(t, h).receiver(addr, &amqp.ReceiverOptions{Credit: n}),
	}
	snd := connect(t, h).sender(addr, nil)
	sendErr := make(chan error, 1)
	ctx := caseContext(t)
	go func() {
		for i := range n {
			if _, err := snd.SendWithReceipt(ctx, text(fmt.Sprint(i)), nil); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- nil
	}()
	seen := map[string]int{}
	for got := 0; got < n; {
		if caseContext(t).Err() != nil {
			t.Fatalf("%d of %d messages received", got, n)
		}
		for _, r := range rcvs {
			if m := receiveWithin(t, r, 10*time.Millisecond); m != nil {
				seen[bodyOf(m)]++
				got++
				_ = r.AcceptMessage(caseContext(t), m)
			}
		}
	}
	if err := <-sendErr; err != nil {
		t.Fatalf("send: %v", err)
	}
	for _, r := range rcvs {
		if m := receiveWithin(t, r, quietPeriod); m != nil {
			t.Fatalf("message %q came twice", bodyOf(m))
		}
	}
	for i := range n {
		if seen[fmt.Sprint(i)] != 1 {
			t.Errorf("message %d received %d times, want once", i, seen[fmt.Sprint(i)])
		}
	}
}

// multicastCopies: every consumer of a multicast address gets every message (oslo
// fanout).
func multicastCopies(t testingT, h *Harness) {
	h.needs(t, Multicast)
	addr := h.topic("fanout")
	rcvs := []*amqp.Receiver{
		connect(t, h).receiver(addr, &amqp.ReceiverOptions{Credit: 100}),
		connect(t, h).receiver(addr, &amqp.ReceiverOptions{Credit: 100}),
	}
	snd := connect(t, h).sender(addr, nil)
	subscribed(t, snd, rcvs...)
	for i := range 5 {
		if err := settled(caseContext(t), snd, text(fmt.Sprint(i))); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	for k, r := range rcvs {
		for i := range 5 {
			if m := mustReceive(t, r); bodyOf(m) != fmt.Sprint(i) {
				t.Fatalf("consumer %d: message %d is %q", k, i, bodyOf(m))
			}
		}
	}
}

// topicDropsWithoutSubscriber: a broker's topic message nobody consumes is gone, not
// kept for a subscriber that comes later (qpidd's topics). A router gives such a
// sender no credit at all (multicastSenderWaitsForConsumer).
func topicDropsWithoutSubscriber(t testingT, h *Harness) {
	h.needsKind(t, Broker)
	h.needs(t, Multicast)
	addr := h.topic("dropped")
	snd := connect(t, h).sender(addr, nil)
	if err := settled(caseContext(t), snd, text("nobody listens")); err != nil {
		t.Fatalf("send with no consumer: %v", err)
	}
	rcv := connect(t, h).receiver(addr, &amqp.ReceiverOptions{Credit: 100})
	subscribed(t, snd, rcv) // fails on any message but a probe
}

// dynamicReplyAddress: a receiver with a dynamic source gets an address named by the
// intermediary, and a sender to that address reaches it (the oslo reply link).
func dynamicReplyAddress(t testingT, h *Harness) {
	h.needs(t, DynamicSource)
	rcv := connect(t, h).receiver("", &amqp.ReceiverOptions{DynamicAddress: true, Credit: 10})
	addr := rcv.Address()
	if addr == "" {
		t.Fatalf("the intermediary named no address for a dynamic source")
	}
	snd := connect(t, h).sender(addr, nil)
	rc, err := snd.SendWithReceipt(caseContext(t), text("reply"), nil)
	if err != nil {
		t.Fatalf("send to the dynamic address %q: %v", addr, err)
	}
	m := mustReceive(t, rcv)
	if bodyOf(m) != "reply" {
		t.Fatalf("received %q, want %q", bodyOf(m), "reply")
	}
	_ = rcv.AcceptMessage(caseContext(t), m)
	if state := awaitReceipt(t, rc); !isAccepted(state) {
		t.Errorf("the sender's delivery ended %T, want accepted", state)
	}
}

// anonymousRelay: a sender with a null target reaches the node its message's to
// property names.
func anonymousRelay(t testingT, h *Harness) {
	h.needs(t, AnonymousRelay)
	addr := h.queue("relay")
	rcv := connect(t, h).receiver(addr, &amqp.ReceiverOptions{Credit: 10})
	snd := connect(t, h).sender("", nil)
	msg := text("relayed")
	msg.Properties = &amqp.MessageProperties{To: &addr}
	rc, err := snd.SendWithReceipt(caseContext(t), msg, nil)
	if err != nil {
		t.Fatalf("send on an anonymous link: %v", err)
	}
	m := mustReceive(t, rcv)
	if bodyOf(m) != "relayed" {
		t.Fatalf("received %q, want %q", bodyOf(m), "relayed")
	}
	_ = rcv.AcceptMessage(caseContext(t), m)
	if state := awaitReceipt(t, rc); !isAccepted(state) {
		t.Errorf("the sender's delivery ended %T, want accepted", state)
	}
}

// modifiedOutcome: modified with delivery-failed is the consumer saying it could not
// process the message. A router passes it back to the sender (which, as oslo, must
// not re-send it); a broker delivers it again with its delivery-count raised.
func modifiedOutcome(t testingT, h *Harness) {
	if h.Kind == Broker {
		h.needs(t, Redelivery)
	}
	addr := h.queue("modified")
	rcv := connect(t, h).receiver(addr, &amqp.ReceiverOptions{Credit: 10})
	snd := connect(t, h).sender(addr, nil)
	rc, err := snd.SendWithReceipt(caseContext(t), text("failed once"), nil)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	m := mustReceive(t, rcv)
	if err := rcv.ModifyMessage(caseContext(t), m, &amqp.ModifyMessageOptions{DeliveryFailed: true}); err != nil {
		t.Fatalf("modify: %v", err)
	}
	state := awaitReceipt(t, rc)
	if h.Kind == Router {
		mod, ok := state.(*amqp.StateModified)
		if !ok || !mod.DeliveryFailed {
			t.Errorf("the sender's delivery ended %#v, want the consumer's modified with delivery-failed", state)
		}
		return
	}
	if !isAccepted(state) {
		t.Errorf("the broker settled the stored message %T, want accepted", state)
	}
	m = mustReceive(t, rcv)
	if bodyOf(m) != "failed once" {
		t.Fatalf("received %q, want the modified message again", bodyOf(m))
	}
	if m.Header == nil || m.Header.DeliveryCount < 1 {
		t.Errorf("the message came back with header %+v, want delivery-count raised to 1", m.Header)
	}
	_ = rcv.AcceptMessage(caseContext(t), m)
}

// idleConnectionKeptAlive: a client that announces an idle time-out and then says
// nothing for three times as long still has its connection: the intermediary sends
// empty frames often enough (part 2.4.5).
func idleConnectionKeptAlive(t testingT, h *Harness) {
	const idle = 500 * time.Millisecond
	ctx := caseContext(t)
	conn, err := amqp.Dial(ctx, h.URL, &amqp.ConnOptions{IdleTimeout: idle})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		t.Fatalf("session: %v", err)
	}
	select {
	case <-conn.Done():
		t.Fatalf("the connection ended while idle: %v", conn.Err())
	case <-time.After(3 * idle):
	case <-ctx.Done():
		t.Fatalf("%v", ctx.Err())
	}
	addr := h.queue("idle")
	rcv, err := sess.NewReceiver(ctx, addr, &amqp.ReceiverOptions{Credit: 1})
	if err != nil {
		t.Fatalf("attach after %v idle: %v", 3*idle, err)
	}
	snd := connect(t, h).sender(addr, nil)
	if err := settled(ctx, snd, text("still here")); err != nil {
		t.Fatalf("send: %v", err)
	}
	if m := mustReceive(t, rcv); bodyOf(m) != "still here" {
		t.Errorf("received %q", bodyOf(m))
	}
}

// brokerExpiresTTL: a broker drops a stored message whose ttl ran out before a
// consumer came (qpidd honours the header's ttl; oslo sets it on every call).
func brokerExpiresTTL(t testingT, h *Harness) {
	h.needsKind(t, Broker)
	addr := h.queue("ttl")
	snd := connect(t, h).sender(addr, nil) // makes the queue
	short := text("short-lived")
	short.Header = &amqp.MessageHeader{TTL: 100 * time.Millisecond}
	if err := snd.Send(caseContext(t), short, nil); err != nil {
		t.Fatalf("send: %v", err)
	}
	if err := snd.Send(caseContext(t), text("lasting"), nil); err != nil {
		t.Fatalf("send: %v", err)
	}
	time.Sleep(4 * 100 * time.Millisecond)
	rcv := connect(t, h).receiver(addr, &amqp.ReceiverOptions{Credit: 10})
	if m := mustReceive(t, rcv); bodyOf(m) != "lasting" {
		t.Errorf("received %q first, want the expired message gone", bodyOf(m))
	}
}
