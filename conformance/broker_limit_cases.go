package conformance

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/amqp1kit/amqp1kit/internal/frameclient"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// brokerLimitCases are what qpidd 1.39.0 does at a queue's limits, each checked against
// the real program. The limits are set the way qpidd takes them from an AMQP 1.0
// client, whatever its configuration: the node properties qpid.max_size and
// qpid.max_count of a sender's target with the create-on-demand capability, on a queue
// that the attach creates.
var brokerLimitCases = map[string]func(t testingT, h *Harness){
	"BrokerQueueSizeLimit":  brokerQueueSizeLimit,
	"BrokerQueueCountLimit": brokerQueueCountLimit,
}

// limitedSender attaches a sender to a new queue addr created on demand with the
// node properties props, and checks that the answer echoes them.
func limitedSender(t testingT, c *frames, addr string, props wire.Fields) uint32 {
	t.Helper()
	handle := c.next
	zero := uint32(0)
	peer := c.attach(&wire.Attach{Role: wire.RoleSender, SndSettleMode: wire.SenderSettleModeMixed, Source: &wire.Source{},
		Target:               &wire.Target{Address: addr, Capabilities: []wire.Symbol{"create-on-demand"}, DynamicNodeProperties: props},
		InitialDeliveryCount: &zero})
	if peer.Target == nil {
		t.Fatalf("the sender to %s was refused", addr)
	}
	for k, v := range props {
		if got := peer.Target.DynamicNodeProperties[k]; fmt.Sprint(got) != fmt.Sprint(v) {
			t.Errorf("the answer's dynamic-node-properties %v, want %s %v echoed", peer.Target.DynamicNodeProperties, k, v)
		}
	}
	return handle
}

// flood sends n messages unsettled on handle to addr, then attaches a receiver there
// (without credit) and reads what the broker answers until that attach is answered and
// the broker is quiet a moment: the delivery-ids it settled accepted, and the detach.
// The broker handles the attach after the transfers, so what it answers them comes
// before its answer to the attach or in the same write (qpidd writes a read's answers
// together, attaches first).
func flood(t testingT, c *frames, handle uint32, addr string, m *wire.Message, n int) (accepted []uint32, detach *wire.Detach) {
	t.Helper()
	if f := c.linkFlow(handle, caseTimeLeft(t)); f == nil || f.LinkCredit == nil || *f.LinkCredit < uint32(n) {
		t.Fatalf("the sender was granted %+v, want credit for %d messages", f, n)
	}
	for range n {
		c.transfer(handle, m, false)
	}
	if err := c.Write(0, &wire.Attach{Name: "conformance-sync-" + randomHex(), Handle: c.next, Role: wire.RoleReceiver,
		SndSettleMode: wire.SenderSettleModeMixed, Source: &wire.Source{Address: addr}, Target: &wire.Target{}}); err != nil {
		t.Fatalf("attach: %v", err)
	}
	c.next++
	accepted, detach = c.outcomes(caseTimeLeft(t), -1)
	if detach == nil {
		t.Fatalf("after %d messages the sender was not detached (accepted %v)", n, accepted)
	}
	return accepted, detach
}

// outcomes reads the accepted dispositions and the detach that come until an attach is
// answered (want < 0) or want accepted ones have come, then reads on while frames keep
// coming a moment apart; or until d passes.
func (c *frames) outcomes(d time.Duration, want int) (accepted []uint32, detach *wire.Detach) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	attached := false
	done := func() bool { return (want < 0 && attached) || (want >= 0 && len(accepted) >= want) }
	for {
		wait := time.Until(deadline)
		if done() {
			wait = min(wait, 300*time.Millisecond)
		}
		if wait <= 0 {
			return accepted, detach
		}
		f, err := c.Quiet(wait)
		if err != nil {
			c.t.Fatalf("waiting for outcomes: %v", err)
		}
		switch b := f.Body.(type) {
		case nil:
			if done() {
				return accepted, detach
			}
		case *wire.Disposition:
			if _, ok := b.State.(*wire.Accepted); !ok || !b.Settled {
				c.t.Errorf("disposition %s, want settled accepted", frameclient.Describe(f))
			}
			last := b.First
			if b.Last != nil {
				last = *b.Last
			}
			for id := b.First; id <= last; id++ {
				accepted = append(accepted, id)
			}
		case *wire.Detach:
			detach = b
		case *wire.Attach:
			attached = true
		case *wire.Flow:
		default:
			c.t.Fatalf("waiting for outcomes, got %s", frameclient.Describe(f))
		}
	}
}

func idRange(from, to uint32) []uint32 {
	var out []uint32
	for id := from; id <= to; id++ {
		out = append(out, id)
	}
	return out
}

// checkLimitDetach checks the detach qpidd sends the sender of a message its queue has
// no room for: closed, amqp:precondition-failed, and a description that begins with
// want (qpidd ends it with the source location of the check).
func checkLimitDetach(t testingT, d *wire.Detach, want string) {
	t.Helper()
	if !d.Closed || d.Error == nil || d.Error.Condition != wire.ErrCondPreconditionFailed || !strings.HasPrefix(d.Error.Description, want) {
		t.Errorf("the sender was detached with closed=%v error %+v, want closed and amqp:precondition-failed %q", d.Closed, d.Error, want)
	}
}

// brokerQueueSizeLimit: a queue of qpid.max_size 10000 takes nine messages of 1008
// bytes (qpidd counts a message's bytes as sent). The first seven are accepted; the
// eighth takes the queue above 80% (producer flow control), so its accepted and the
// ninth's are withheld; the tenth would exceed the limit: it is neither stored nor
// answered, and the link is detached with amqp:precondition-failed
// "resource-limit-exceeded: Maximum depth exceeded on QUEUE: current=[count: 9, size:
// 9072], max=[size: 10000]". Once a consumer takes the queue below 70%, the withheld
// outcomes come.
func brokerQueueSizeLimit(t testingT, h *Harness) {
	h.needsKind(t, Broker)
	addr := h.queue("size-limit")
	c := connectFrames(t, h)
	sh := limitedSender(t, c, addr, wire.Fields{"qpid.max_size": int64(10000)})
	m := &wire.Message{Data: [][]byte{[]byte(strings.Repeat("x", 1000))}}
	accepted, detach := flood(t, c, sh, addr, m, 20)
	if !slices.Equal(accepted, idRange(0, 6)) {
		t.Errorf("accepted %v, want 0 to 6 (the 8th and 9th withheld, the 10th refused)", accepted)
	}
	checkLimitDetach(t, detach, fmt.Sprintf("resource-limit-exceeded: Maximum depth exceeded on %s: current=[count: 9, size: 9072], max=[size: 10000]", addr))

	// A consumer takes three (6048 bytes left, under 70%): the withheld come.
	r := connectFrames(t, h)
	rh, _ := r.receiverLink(addr)
	r.flow(rh, 0, 3, false)
	for range 3 {
		tr, _ := r.delivery()
		r.settle(*tr.DeliveryID, &wire.Accepted{})
	}
	accepted, _ = c.outcomes(caseTimeLeft(t), 2)
	if !slices.Equal(accepted, []uint32{7, 8}) {
		t.Errorf("once a consumer took three messages, the sender got accepted for %v, want 7 and 8", accepted)
	}
	// Nine were stored: six are left.
	r.flow(rh, 3, 100, false)
	for i := range 6 {
		if tr, _ := r.deliveryWithin(caseTimeLeft(t)); tr == nil {
			t.Fatalf("%d messages left in the queue, want 6", i)
		}
	}
	if tr, _ := r.deliveryWithin(300 * time.Millisecond); tr != nil {
		t.Errorf("a 7th message was left in the queue: the refused one was stored")
	}
}

// brokerQueueCountLimit: a queue of qpid.max_count 5 (and the default size limit,
// 104857600 unless the broker's configuration says otherwise)
// stops the flow above 4 messages (80% of 5, rounded) and detaches the sender of the
// 6th, the description naming both limits.
func brokerQueueCountLimit(t testingT, h *Harness) {
	h.needsKind(t, Broker)
	addr := h.queue("count-limit")
	c := connectFrames(t, h)
	sh := limitedSender(t, c, addr, wire.Fields{"qpid.max_count": int64(5)})
	m := textMessage("x")
	b, err := m.AppendTo(nil)
	if err != nil {
		t.Fatalf("encode a message: %v", err)
	}
	accepted, detach := flood(t, c, sh, addr, m, 8)
	if !slices.Equal(accepted, idRange(0, 3)) {
		t.Errorf("accepted %v, want 0 to 3 (the 5th withheld, the 6th refused)", accepted)
	}
	checkLimitDetach(t, detach, fmt.Sprintf("resource-limit-exceeded: Maximum depth exceeded on %s: current=[count: 5, size: %d], max=[count: 5, size: 104857600]", addr, 5*len(b)))
}
