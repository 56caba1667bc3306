package conformance

import (
	"strconv"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// drainWithCreditEchoed: a drain on a source with nothing to send comes back at once
// with the credit spent (part 2.6.7): delivery-count advanced by the credit, credit 0,
// drain set. Written by hand, as one flow carrying credit and drain, because go-amqp
// may merge an IssueCredit that has not gone out yet into its drain flow with credit 0
// (see drainWithNoCreditNotAnswered).
func drainWithCreditEchoed(t testingT, h *Harness) {
	c := connectFrames(t, h)
	handle, _ := c.receiverLink(h.queue("drain"))
	c.flow(handle, 0, 5, true)
	echo := c.linkFlow(handle, caseTimeLeft(t))
	if echo == nil {
		t.Fatalf("no flow came back for the drain: a client's drain would hang")
	}
	if !echo.Drain {
		t.Errorf("the answer to the drain has drain=false")
	}
	if echo.LinkCredit == nil || *echo.LinkCredit != 0 {
		t.Errorf("the answer to the drain has link-credit %v, want 0", ptrString(echo.LinkCredit))
	}
	if echo.DeliveryCount == nil || *echo.DeliveryCount != 5 {
		t.Errorf("the answer to the drain has delivery-count %v, want 5 (advanced by the unused credit)", ptrString(echo.DeliveryCount))
	}
}

// drainWithNoCreditNotAnswered: a drain flow that carries no credit has nothing to
// spend, and qdrouterd and qpidd (both on Qpid Proton) send nothing back. A client that
// waits for an answer waits for ever: go-amqp's DrainCredit does, when it sends its
// drain before the credit an IssueCredit asked for.
func drainWithNoCreditNotAnswered(t testingT, h *Harness) {
	c := connectFrames(t, h)
	handle, _ := c.receiverLink(h.queue("drain-empty"))
	c.flow(handle, 0, 0, true)
	if f := c.linkFlow(handle, quietPeriod); f != nil {
		t.Errorf("the intermediary answered a drain with no credit: flow drain=%v link-credit=%s delivery-count=%s",
			f.Drain, ptrString(f.LinkCredit), ptrString(f.DeliveryCount))
	}
}

func ptrString(p *uint32) string {
	if p == nil {
		return "absent"
	}
	return strconv.FormatUint(uint64(*p), 10)
}

// caseTimeLeft is what remains of the running case's time.
func caseTimeLeft(t testingT) time.Duration {
	if d, ok := caseContext(t).Deadline(); ok {
		return time.Until(d)
	}
	return 20 * time.Second
}

// anycast returns a balanced address on a router configured as the deployment guide
// says (the routable oslo anycast prefix).
func anycast(name string) string {
	return "openstack.org/om/rpc/anycast/conformance/" + uniqueName(name)
}

// creditWithoutConsumer: what a sender gets before any consumer exists, per kind of
// address. A router stores nothing, so a sender gets no credit on a closest, balanced
// or multicast address until a consumer attaches (qdrouterd 1.10 and later; the older
// qdrouterd the deployment guide describes gave multicast senders credit and dropped
// their messages). A broker gives credit on its queues and topics at once.
func creditWithoutConsumer(t testingT, h *Harness) {
	c := connectFrames(t, h)
	addrs := map[string]string{"queue": h.queue("credit-q"), "topic": h.topic("credit-t")}
	if h.Kind == Router {
		addrs["balanced"] = anycast("credit-b")
	}
	handles := map[string]uint32{}
	for kind, addr := range addrs {
		handles[kind], _ = c.senderLink(addr, wire.SenderSettleModeMixed)
	}
	flows := c.linkFlows(quietPeriod)
	for kind, handle := range handles {
		f := flows[handle]
		granted := f != nil && f.LinkCredit != nil && *f.LinkCredit > 0
		switch {
		case h.Kind == Router && granted:
			t.Errorf("a router granted %d credit to a sender on a %s address with no consumer", *f.LinkCredit, kind)
		case h.Kind == Broker && !granted:
			t.Errorf("a broker granted no credit to a sender on its %s %q", kind, addrs[kind])
		}
	}
}

// multicastSenderWaitsForConsumer: on a router, a multicast sender with no consumer
// has no credit, and gets some once a consumer attaches; its message then reaches it.
func multicastSenderWaitsForConsumer(t testingT, h *Harness) {
	h.needsKind(t, Router)
	h.needs(t, Multicast)
	addr := h.topic("waits")
	c := connectFrames(t, h)
	handle, _ := c.senderLink(addr, wire.SenderSettleModeMixed)
	if f := c.linkFlow(handle, quietPeriod); f != nil && f.LinkCredit != nil && *f.LinkCredit > 0 {
		t.Fatalf("the router granted %d credit to a multicast sender with no consumer", *f.LinkCredit)
	}
	rcv := connect(t, h).receiver(addr, &amqp.ReceiverOptions{Credit: 10})
	for {
		f := c.linkFlow(handle, caseTimeLeft(t))
		if f == nil {
			t.Fatalf("no credit came once a consumer attached")
		}
		if f.LinkCredit != nil && *f.LinkCredit > 0 {
			break
		}
	}
	c.transfer(handle, textMessage("now heard"), true)
	if m := mustReceive(t, rcv); bodyOf(m) != "now heard" {
		t.Errorf("received %q, want %q", bodyOf(m), "now heard")
	}
}
