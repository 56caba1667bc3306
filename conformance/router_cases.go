package conformance

import (
	"net/url"
	"strings"
	"time"

	"github.com/amqp1kit/amqp1kit/internal/frameclient"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// routerCases are the cases about what qdrouterd does as a router, beyond the common
// ones in cases.go; Run runs them all alike. Each was written against qdrouterd 1.19.0
// as the deployment guide configures it, frame by frame.
var routerCases = map[string]func(t testingT, h *Harness){
	"RouterOpenFrame":                    routerOpenFrame,
	"RouterRefusesReceiverWithoutSource": routerRefusesReceiverWithoutSource,
	"RouterCreditWithIdleConsumer":       routerCreditWithIdleConsumer,
	"RouterCreditBackOnSettlement":       routerCreditBackOnSettlement,
	"RouterNoPathAsksSenderToDrain":      routerNoPathAsksSenderToDrain,
	"RouterMulticastCopiesUnsettled":     routerMulticastCopiesUnsettled,
	"RouterMulticastCopiesPresettled":    routerMulticastCopiesPresettled,
	"RouterRelayWithoutToRejected":       routerRelayWithoutToRejected,
	"RouterRelayWithoutPathReleased":     routerRelayWithoutPathReleased,
	"RouterDynamicAddresses":             routerDynamicAddresses,
	"RouterForwardsHeaderUnchanged":      routerForwardsHeaderUnchanged,
	"AttachAnswerFields":                 attachAnswerFields,
	"BeginAnswered":                      beginAnswered,
	"EchoFlowNotAnswered":                echoFlowNotAnswered,
}

// routerOpenFrame: qdrouterd's open: max-frame-size 16384 and idle-time-out 8000 (half
// its 16 s default), channel-max the lower of 32767 and the client's, ANONYMOUS-RELAY
// and qd.streaming-links both offered and desired, properties product, version and
// qd.conn-id (an int). Its SASL layer offers ANONYMOUS (the guide's listener).
func routerOpenFrame(t testingT, h *Harness) {
	h.needsKind(t, Router)
	c := dialFrames(t, h)
	o := c.open
	if o.MaxFrameSize != 16384 || o.IdleTimeOut != 8000 || o.ChannelMax != 15 {
		t.Errorf("open max-frame-size %d, idle-time-out %d, channel-max %d; want 16384, 8000 and 15 (the client's 15 is lower than 32767)",
			o.MaxFrameSize, o.IdleTimeOut, o.ChannelMax)
	}
	for _, caps := range [][]wire.Symbol{o.OfferedCapabilities, o.DesiredCapabilities} {
		if len(caps) != 2 || caps[0] != "ANONYMOUS-RELAY" || caps[1] != "qd.streaming-links" {
			t.Errorf("open capabilities offered %v, desired %v; want [ANONYMOUS-RELAY qd.streaming-links] both", o.OfferedCapabilities, o.DesiredCapabilities)
			break
		}
	}
	if o.Properties["product"] != "qpid-dispatch-router" || o.Properties["version"] != "1.19.0" {
		t.Errorf("open properties %v: want product qpid-dispatch-router, version 1.19.0", o.Properties)
	}
	if id, ok := o.Properties["qd.conn-id"].(int32); !ok || id <= 0 {
		t.Errorf("open property qd.conn-id is %T %v, want a positive int", o.Properties["qd.conn-id"], o.Properties["qd.conn-id"])
	}
	s := rawConn(t, h)
	mechs, _, err := s.SASL("ANONYMOUS", nil)
	if err != nil {
		t.Fatalf("SASL: %v", err)
	}
	if got := mechs.SASLServerMechanisms; len(got) != 1 || got[0] != "ANONYMOUS" {
		t.Errorf("SASL mechanisms %v, want [ANONYMOUS]", got)
	}
}

// rawConn is a hand-written connection that has exchanged nothing yet.
func rawConn(t testingT, h *Harness) *frameclient.Conn {
	t.Helper()
	fc, err := frameclient.Dial(hostOf(t, h))
	if err != nil {
		t.Fatalf("connect to %s: %v", h.Name, err)
	}
	t.Cleanup(func() { fc.Close() })
	fc.Timeout = caseTimeLeft(t)
	return fc
}

// routerRefusesReceiverWithoutSource: a receiving link with a null source is answered
// with a null source and detached with qd:no-route-to-dest.
func routerRefusesReceiverWithoutSource(t testingT, h *Harness) {
	h.needsKind(t, Router)
	c := connectFrames(t, h)
	peer := c.attach(&wire.Attach{Role: wire.RoleReceiver, SndSettleMode: wire.SenderSettleModeMixed, Target: &wire.Target{}})
	if peer.Source != nil {
		t.Errorf("the refusing attach has source %+v, want null", *peer.Source)
	}
	d := expect[*wire.Detach](c)
	if d.Error == nil || d.Error.Condition != "qd:no-route-to-dest" {
		t.Errorf("detach error %v, want qd:no-route-to-dest", d.Error)
	}
}

// routerCreditWithIdleConsumer: a sender gets the whole link capacity (250) as soon as
// its address has a consumer, whatever credit the consumer gave; its message waits in
// the router until the consumer grants some.
func routerCreditWithIdleConsumer(t testingT, h *Harness) {
	h.needsKind(t, Router)
	rc, rh, sc, sh := idlePair(t, h, h.queue("idle-consumer"))
	sc.transfer(sh, textMessage("waits"), false)
	if got, err := rc.Quiet(quietPeriod); err != nil || got.Body != nil {
		t.Fatalf("before the consumer granted credit it got %s (%v)", frameclient.Describe(got), err)
	}
	rc.flow(rh, 0, 1, false)
	if _, m := rc.delivery(); string(m.Data[0]) != "waits" {
		t.Errorf("received %q, want %q", m.Data[0], "waits")
	}
}

// idlePair connects a consumer to addr that grants no credit and a sender (mixed mode)
// to it, and requires the sender's first flow to grant the router's link capacity
// (250) all the same.
func idlePair(t testingT, h *Harness, addr string) (rc *frames, rh uint32, sc *frames, sh uint32) {
	t.Helper()
	rc = connectFrames(t, h)
	rh, _ = rc.receiverLink(addr)
	sc = connectFrames(t, h)
	sh, _ = sc.senderLink(addr, wire.SenderSettleModeMixed)
	if f := sc.linkFlow(sh, caseTimeLeft(t)); f == nil || f.LinkCredit == nil || *f.LinkCredit != 250 {
		t.Fatalf("the sender's credit with a consumer of no credit: flow %v, want link-credit 250", flowString(f))
	}
	return rc, rh, sc, sh
}

// creditedPair connects a consumer to addr with credit 10 and an unsettled sender to
// it, and requires the sender's first flow to grant the router's link capacity (250).
func creditedPair(t testingT, h *Harness, addr string) (rc, sc *frames, sh uint32) {
	t.Helper()
	rc = connectFrames(t, h)
	rh, _ := rc.receiverLink(addr)
	rc.flow(rh, 0, 10, false)
	sc = connectFrames(t, h)
	sh, _ = sc.senderLink(addr, wire.SenderSettleModeMixed)
	if f := sc.linkFlow(sh, caseTimeLeft(t)); f == nil || f.LinkCredit == nil || *f.LinkCredit != 250 {
		t.Fatalf("initial credit: flow %v, want 250", flowString(f))
	}
	return rc, sc, sh
}

// routerCreditBackOnSettlement: the router gives a sender back the credit of each
// delivery as it settles it (a flow before the disposition), so an unsettled sender
// holds the link capacity less what is in flight.
func routerCreditBackOnSettlement(t testingT, h *Harness) {
	h.needsKind(t, Router)
	addr := h.queue("credit-back")
	rc, sc, sh := creditedPair(t, h, addr)
	for i := range 3 {
		sc.transfer(sh, textMessage("m"), false)
		tr, _ := rc.delivery()
		if err := rc.Write(0, &wire.Disposition{Role: wire.RoleReceiver, First: *tr.DeliveryID, Settled: true, State: &wire.Accepted{}}); err != nil {
			t.Fatalf("disposition: %v", err)
		}
		f := expect[*wire.Flow](sc)
		if f.DeliveryCount == nil || *f.DeliveryCount != uint32(i+1) || f.LinkCredit == nil || *f.LinkCredit != 250 {
			t.Errorf("after delivery %d settled the sender got flow %s, want delivery-count %d, link-credit 250", i, flowString(f), i+1)
		}
		if d := expect[*wire.Disposition](sc); !isWireAccepted(d.State) {
			t.Errorf("the sender's delivery %d ended %T, want accepted", i, d.State)
		}
	}
}

// routerNoPathAsksSenderToDrain: once the only consumer has gone, the sender keeps its
// credit (qdrouterd never takes credit back), and a message that finds no path is
// released with a flow asking the sender to drain; a new consumer brings credit back.
func routerNoPathAsksSenderToDrain(t testingT, h *Harness) {
	h.needsKind(t, Router)
	addr := h.queue("no-path")
	rc, sc, sh := creditedPair(t, h, addr)
	rc.Close()
	if f := sc.linkFlow(sh, quietPeriod); f != nil {
		t.Errorf("the consumer left and the sender got flow %s: credit is never taken back", flowString(f))
	}
	sc.transfer(sh, textMessage("nowhere"), false)
	f := expect[*wire.Flow](sc)
	if !f.Drain || f.LinkCredit == nil || *f.LinkCredit != 249 {
		t.Errorf("after a message with no path the sender got flow %s, want drain with link-credit 249", flowString(f))
	}
	if d := expect[*wire.Disposition](sc); !isWireReleased(d.State) {
		t.Errorf("the message with no path ended %T, want released", d.State)
	}
	back := connectFrames(t, h)
	back.receiverLink(addr)
	f = expect[*wire.Flow](sc)
	if f.Drain || f.LinkCredit == nil || *f.LinkCredit != 250 {
		t.Errorf("a consumer came back and the sender got flow %s, want link-credit 250 without drain", flowString(f))
	}
}

// routerMulticastCopiesUnsettled: an unsettled multicast message reaches each consumer
// unsettled, and the sender's delivery is settled once every copy is, with the
// strongest outcome: a rejection beats an acceptance.
func routerMulticastCopiesUnsettled(t testingT, h *Harness) {
	h.needsKind(t, Router)
	h.needs(t, Multicast)
	addr := h.topic("mc-unsettled")
	consumers := []*frames{connectFrames(t, h), connectFrames(t, h)}
	for _, rc := range consumers {
		rh, _ := rc.receiverLink(addr)
		rc.flow(rh, 0, 10, false)
	}
	sc := connectFrames(t, h)
	sh, _ := sc.senderLink(addr, wire.SenderSettleModeMixed)
	if f := sc.linkFlow(sh, caseTimeLeft(t)); f == nil || f.LinkCredit == nil || *f.LinkCredit == 0 {
		t.Fatalf("no credit for a multicast sender with two consumers: %s", flowString(f))
	}
	sc.transfer(sh, textMessage("copy"), false)
	var ids []uint32
	for i, rc := range consumers {
		tr, _ := rc.delivery()
		if tr.Settled {
			t.Errorf("consumer %d got its copy of an unsettled message settled", i)
		}
		ids = append(ids, *tr.DeliveryID)
	}
	states := []wire.DeliveryState{&wire.Rejected{}, &wire.Accepted{}}
	if err := consumers[0].Write(0, &wire.Disposition{Role: wire.RoleReceiver, First: ids[0], Settled: true, State: states[0]}); err != nil {
		t.Fatalf("disposition: %v", err)
	}
	for deadline := time.Now().Add(quietPeriod); time.Now().Before(deadline); {
		f, err := sc.Quiet(time.Until(deadline))
		if err != nil {
			t.Fatalf("%v", err)
		}
		if _, ok := f.Body.(*wire.Disposition); ok {
			t.Fatalf("the sender's delivery was settled before every copy was: %s", frameclient.Describe(f))
		}
	}
	if err := consumers[1].Write(0, &wire.Disposition{Role: wire.RoleReceiver, First: ids[1], Settled: true, State: states[1]}); err != nil {
		t.Fatalf("disposition: %v", err)
	}
	if d := expect[*wire.Disposition](sc); !isWireRejected(d.State) || !d.Settled {
		t.Errorf("the sender's delivery ended %T (settled %v), want rejected: one consumer rejected its copy", d.State, d.Settled)
	}
}

// routerMulticastCopiesPresettled: a pre-settled multicast message reaches each
// consumer pre-settled.
func routerMulticastCopiesPresettled(t testingT, h *Harness) {
	h.needsKind(t, Router)
	h.needs(t, Multicast)
	addr := h.topic("mc-presettled")
	rc := connectFrames(t, h)
	rh, _ := rc.receiverLink(addr)
	rc.flow(rh, 0, 10, false)
	sc := connectFrames(t, h)
	sh, _ := sc.senderLink(addr, wire.SenderSettleModeMixed)
	if f := sc.linkFlow(sh, caseTimeLeft(t)); f == nil {
		t.Fatalf("no credit for a multicast sender with a consumer")
	}
	sc.transfer(sh, textMessage("cast"), true)
	if tr, _ := rc.delivery(); !tr.Settled {
		t.Errorf("the copy of a pre-settled multicast message came unsettled")
	}
}

// routerRelayWithoutToRejected: on an anonymous link, a message without a to address
// is rejected at once with amqp:precondition-failed.
func routerRelayWithoutToRejected(t testingT, h *Harness) {
	h.needsKind(t, Router)
	c := connectFrames(t, h)
	handle, _ := c.senderLink("", wire.SenderSettleModeMixed)
	if f := c.linkFlow(handle, caseTimeLeft(t)); f == nil {
		t.Fatalf("no credit for an anonymous sender")
	}
	c.transfer(handle, textMessage("no to"), false)
	d := expect[*wire.Disposition](c)
	rej, ok := d.State.(*wire.Rejected)
	if !ok || rej.Error == nil || rej.Error.Condition != wire.ErrCondPreconditionFailed {
		t.Errorf("a message without to ended %T %+v, want rejected with amqp:precondition-failed", d.State, d.State)
	}
}

// routerRelayWithoutPathReleased: on an anonymous link, a message to an address that
// nobody consumes is released.
func routerRelayWithoutPathReleased(t testingT, h *Harness) {
	h.needsKind(t, Router)
	c := connectFrames(t, h)
	handle, _ := c.senderLink("", wire.SenderSettleModeMixed)
	if f := c.linkFlow(handle, caseTimeLeft(t)); f == nil {
		t.Fatalf("no credit for an anonymous sender")
	}
	m := textMessage("to nobody")
	m.Properties = &wire.Properties{To: h.queue("relay-nobody")}
	c.transfer(handle, m, false)
	if d := expect[*wire.Disposition](c); !isWireReleased(d.State) {
		t.Errorf("a message to an address with no consumer ended %T, want released", d.State)
	}
}

// routerDynamicAddresses: a dynamic source is named amqp:/_topo/0/<router>/temp.<id>
// and answered dynamic; a dynamic target is named amqp:/_$temp.<id> and, having no
// consumer, gives its sender no credit.
func routerDynamicAddresses(t testingT, h *Harness) {
	h.needsKind(t, Router)
	h.needs(t, DynamicSource)
	c := connectFrames(t, h)
	src := c.attach(&wire.Attach{Role: wire.RoleReceiver, SndSettleMode: wire.SenderSettleModeMixed,
		Source: &wire.Source{Dynamic: true}, Target: &wire.Target{}}).Source
	if src == nil || !src.Dynamic || !strings.HasPrefix(src.Address, "amqp:/_topo/0/") || !strings.Contains(src.Address, "/temp.") {
		t.Errorf("dynamic source answered %+v, want dynamic with an address amqp:/_topo/0/<router>/temp.<id>", src)
	}
	zero := uint32(0)
	tgt := c.attach(&wire.Attach{Role: wire.RoleSender, SndSettleMode: wire.SenderSettleModeMixed,
		Source: &wire.Source{}, Target: &wire.Target{Dynamic: true}, InitialDeliveryCount: &zero}).Target
	if tgt == nil || !tgt.Dynamic || !strings.HasPrefix(tgt.Address, "amqp:/_$temp.") {
		t.Errorf("dynamic target answered %+v, want dynamic with an address amqp:/_$temp.<id>", tgt)
	}
	if f := c.linkFlow(c.next-1, quietPeriod); f != nil && f.LinkCredit != nil && *f.LinkCredit > 0 {
		t.Errorf("a sender to a dynamic target got credit %d with no consumer", *f.LinkCredit)
	}
}

// routerForwardsHeaderUnchanged: the router passes a message's header on as it came:
// the same ttl (it does not count down), no priority or first-acquirer added.
func routerForwardsHeaderUnchanged(t testingT, h *Harness) {
	h.needsKind(t, Router)
	addr := h.queue("header")
	rc := connectFrames(t, h)
	rh, _ := rc.receiverLink(addr)
	rc.flow(rh, 0, 1, false)
	sc := connectFrames(t, h)
	sh, _ := sc.senderLink(addr, wire.SenderSettleModeMixed)
	if f := sc.linkFlow(sh, caseTimeLeft(t)); f == nil {
		t.Fatalf("no credit")
	}
	m := textMessage("ttl")
	m.Header = &wire.Header{TTL: 10000}
	sc.transfer(sh, m, true)
	_, got := rc.delivery()
	if got.Header == nil || got.Header.TTL != 10000 || got.Header.Priority != nil || got.Header.FirstAcquirer || got.Header.DeliveryCount != 0 {
		t.Errorf("the header arrived as %+v, want ttl 10000 and nothing else", got.Header)
	}
}

// attachAnswerFields: qdrouterd and qpidd (both on Qpid Proton) answer an attach with
// initial-delivery-count 0 whatever the role, max-message-size 0 (no limit) and the
// termini's expiry-policy spelled out as session-end.
func attachAnswerFields(t testingT, h *Harness) {
	c := connectFrames(t, h)
	addr := h.queue("answer")
	_, rcv := c.receiverLink(addr)
	_, snd := c.senderLink(addr, wire.SenderSettleModeMixed)
	for _, a := range []*wire.Attach{rcv, snd} {
		if a.InitialDeliveryCount == nil || *a.InitialDeliveryCount != 0 {
			t.Errorf("the %v attach answers initial-delivery-count %s, want 0", a.Role, ptrString(a.InitialDeliveryCount))
		}
		if a.MaxMessageSize != 0 {
			t.Errorf("the %v attach answers max-message-size %d, want 0 (no limit)", a.Role, a.MaxMessageSize)
		}
		if a.Source == nil || a.Target == nil || a.Source.ExpiryPolicy != wire.TerminusExpiryPolicySessionEnd || a.Target.ExpiryPolicy != wire.TerminusExpiryPolicySessionEnd {
			t.Errorf("the %v attach answers source %+v, target %+v: want both with expiry-policy session-end", a.Role, a.Source, a.Target)
		}
	}
}

// beginAnswered: a begin on channel 3 is answered with remote-channel 3, and incoming
// and outgoing windows of 2147483647 (Qpid Proton's: link credit alone bounds what
// flows).
func beginAnswered(t testingT, h *Harness) {
	c := dialFrames(t, h)
	b, err := c.Begin(3, &wire.Begin{IncomingWindow: 100, OutgoingWindow: 100, HandleMax: 7})
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	if b.RemoteChannel == nil || *b.RemoteChannel != 3 {
		t.Errorf("begin answered with remote-channel %v, want 3", b.RemoteChannel)
	}
	if b.IncomingWindow != 1<<31-1 || b.OutgoingWindow != 1<<31-1 {
		t.Errorf("begin answered with windows %d in, %d out; want 2147483647 both", b.IncomingWindow, b.OutgoingWindow)
	}
}

// echoFlowNotAnswered: qdrouterd and qpidd (Qpid Proton) leave a flow that asks for an
// echo unanswered, on a link and on the session, and their flows carry no available.
func echoFlowNotAnswered(t testingT, h *Harness) {
	c := connectFrames(t, h)
	handle, _ := c.receiverLink(h.queue("echo"))
	next, credit, dc := uint32(0), uint32(5), uint32(0)
	if err := c.Write(0, &wire.Flow{NextIncomingID: &next, IncomingWindow: 5000, OutgoingWindow: 5000,
		Handle: &handle, DeliveryCount: &dc, LinkCredit: &credit, Echo: true}); err != nil {
		t.Fatalf("flow: %v", err)
	}
	if err := c.Write(0, &wire.Flow{NextIncomingID: &next, IncomingWindow: 5000, OutgoingWindow: 5000, Echo: true}); err != nil {
		t.Fatalf("flow: %v", err)
	}
	if f, err := c.Quiet(quietPeriod); err != nil || f.Body != nil {
		t.Errorf("an echo was answered with %s (%v)", frameclient.Describe(f), err)
	}
	// A drain is answered, without available.
	c.flow(handle, 0, 5, true)
	if f := c.linkFlow(handle, caseTimeLeft(t)); f == nil || f.Available != nil {
		t.Errorf("the answer to a drain: %s with available %s, want a flow without available", flowString(f), ptrString(availableOf(f)))
	}
}

func availableOf(f *wire.Flow) *uint32 {
	if f == nil {
		return nil
	}
	return f.Available
}

// hostOf is the host:port of h's URL.
func hostOf(t testingT, h *Harness) string {
	t.Helper()
	u, err := url.Parse(h.URL)
	if err != nil {
		t.Fatalf("harness URL %q: %v", h.URL, err)
	}
	return u.Host
}

func flowString(f *wire.Flow) string {
	if f == nil {
		return "none"
	}
	return "{delivery-count " + ptrString(f.DeliveryCount) + ", link-credit " + ptrString(f.LinkCredit) +
		", drain " + map[bool]string{true: "true", false: "false"}[f.Drain] + "}"
}

func isWireAccepted(s wire.DeliveryState) bool { _, ok := s.(*wire.Accepted); return ok }
func isWireReleased(s wire.DeliveryState) bool { _, ok := s.(*wire.Released); return ok }
func isWireRejected(s wire.DeliveryState) bool { _, ok := s.(*wire.Rejected); return ok }
