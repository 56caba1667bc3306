package conformance

import (
	"bytes"
	"math"
	"regexp"
	"slices"
	"strings"

	"github.com/amqp1kit/amqp1kit/internal/frameclient"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// brokerCases are the cases about what qpidd does as a broker, beyond the common ones
// in cases.go; Run runs them all alike. They hold for qpidd 1.39.0 as the deployment
// guide configures it (auth=no; queue-patterns exclusive and unicast; topic-patterns
// broadcast), each checked against the real program.
var brokerCases = map[string]func(t testingT, h *Harness){
	"BrokerSASLMechanisms":                 brokerSASLMechanisms,
	"BrokerOpenAnswer":                     brokerOpenAnswer,
	"BrokerIdleTimeoutMirrored":            brokerIdleTimeoutMirrored,
	"BrokerAnswersOwnTerminus":             brokerAnswersOwnTerminus,
	"BrokerTopicSourceFilter":              brokerTopicSourceFilter,
	"BrokerRefusesNullTerminus":            brokerRefusesNullTerminus,
	"BrokerNodeNotFound":                   brokerNodeNotFound,
	"BrokerDynamicNodes":                   brokerDynamicNodes,
	"BrokerDynamicNodeKeptWhileUsed":       brokerDynamicNodeKeptWhileUsed,
	"BrokerAnonymousRelayAcceptsAll":       brokerAnonymousRelayAcceptsAll,
	"BrokerQueueGoesWhenUnusedAndEmpty":    brokerQueueGoesWhenUnusedAndEmpty,
	"BrokerHeaderOnDelivery":               brokerHeaderOnDelivery,
	"BrokerRedeliveryHeader":               brokerRedeliveryHeader,
	"BrokerTopicCopiesSettled":             brokerTopicCopiesSettled,
	"BrokerSubscriptionOutlivesConnection": brokerSubscriptionOutlivesConnection,
	"BrokerSubscriptionNameInUse":          brokerSubscriptionNameInUse,
	"BrokerSenderCreditToppedUp":           brokerSenderCreditToppedUp,
	"BrokerSettlesOnDetach":                brokerSettlesOnDetach,
}

// brokerSASLMechanisms: qpidd with auth=no offers ANONYMOUS and PLAIN, in that order,
// and takes PLAIN with any user name and password.
func brokerSASLMechanisms(t testingT, h *Harness) {
	h.needsKind(t, Broker)
	mechs, outcome := saslExchange(t, h, "PLAIN", []byte("\x00conformance\x00made-up"))
	if want := []wire.Symbol{"ANONYMOUS", "PLAIN"}; !slices.Equal(mechs.SASLServerMechanisms, want) {
		t.Errorf("mechanisms offered %v, want %v", mechs.SASLServerMechanisms, want)
	}
	if outcome.Code != wire.SASLCodeOK {
		t.Errorf("PLAIN with a made-up user and password: outcome %v, want ok", outcome.Code)
	}
	if _, outcome = saslExchange(t, h, "ANONYMOUS", nil); outcome.Code != wire.SASLCodeOK {
		t.Errorf("ANONYMOUS: outcome %v, want ok", outcome.Code)
	}
}

var uuidString = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// brokerOpenAnswer: qpidd's open: its container-id is a UUID of the broker process
// (the same on every connection), max-frame-size 4294967295 whatever the client's,
// channel-max the lower of 32767 and the client's, and properties product qpid-cpp,
// version, platform and host.
func brokerOpenAnswer(t testingT, h *Harness) {
	h.needsKind(t, Broker)
	o := openFrames(t, h, &wire.Open{ContainerID: "conformance-" + randomHex(), MaxFrameSize: 65536, ChannelMax: 65535}).open
	if !uuidString.MatchString(o.ContainerID) {
		t.Errorf("container-id %q, want a UUID", o.ContainerID)
	}
	if o.MaxFrameSize != math.MaxUint32 {
		t.Errorf("max-frame-size %d, want 4294967295", o.MaxFrameSize)
	}
	if o.ChannelMax != 32767 {
		t.Errorf("channel-max %d to a client that said 65535, want 32767", o.ChannelMax)
	}
	if o.Properties["product"] != "qpid-cpp" {
		t.Errorf("product %v, want qpid-cpp", o.Properties["product"])
	}
	for _, key := range []wire.Symbol{"version", "platform", "host"} {
		if v, ok := o.Properties[key].(string); !ok || v == "" {
			t.Errorf("property %s is %#v, want a string", key, o.Properties[key])
		}
	}
	o2 := openFrames(t, h, &wire.Open{ContainerID: "conformance-" + randomHex(), MaxFrameSize: 512, ChannelMax: 15}).open
	if o2.ChannelMax != 15 || o2.MaxFrameSize != math.MaxUint32 {
		t.Errorf("a client saying channel-max 15 and max-frame-size 512 was answered %d and %d, want 15 and 4294967295", o2.ChannelMax, o2.MaxFrameSize)
	}
	if o2.ContainerID != o.ContainerID {
		t.Errorf("container-id %q on a second connection, %q on the first: want the same", o2.ContainerID, o.ContainerID)
	}
}

// brokerIdleTimeoutMirrored: qpidd announces the idle time-out its client announces
// (it takes twice the client's as its own threshold), and none to a client that
// announces none.
func brokerIdleTimeoutMirrored(t testingT, h *Harness) {
	h.needsKind(t, Broker)
	for _, idle := range []uint32{0, 5000, 60000} {
		o := openFrames(t, h, &wire.Open{ContainerID: "conformance-" + randomHex(), MaxFrameSize: 65536, ChannelMax: 15, IdleTimeOut: idle}).open
		if o.IdleTimeOut != idle {
			t.Errorf("a client announcing idle-time-out %d was answered %d, want the same", idle, o.IdleTimeOut)
		}
	}
}

// brokerAnswersOwnTerminus: qpidd answers an attach with termini of its own, not the
// client's: the node's side has the node's address, the capabilities asked for that
// the node has, a queue source distribution-mode move, and otherwise the defaults;
// the other side is an empty terminus (address "").
func brokerAnswersOwnTerminus(t testingT, h *Harness) {
	h.needsKind(t, Broker)
	addr := h.queue("terminus")
	c := connectFrames(t, h)
	peer := c.attach(&wire.Attach{Role: wire.RoleReceiver, SndSettleMode: wire.SenderSettleModeMixed,
		Source: &wire.Source{Address: addr, Durable: wire.TerminusDurabilityConfiguration, ExpiryPolicy: wire.TerminusExpiryPolicyNever,
			Timeout: 7, Outcomes: []wire.Symbol{"amqp:accepted:list"}, Capabilities: []wire.Symbol{"queue", "conformance-unknown"}},
		Target: &wire.Target{Address: "conformance-target", Durable: wire.TerminusDurabilityConfiguration, Timeout: 9,
			Capabilities: []wire.Symbol{"conformance-unknown"}}})
	checkSource(t, "a receiver's source", peer.Source, &wire.Source{Address: addr, DistributionMode: "move", Capabilities: []wire.Symbol{"queue"}})
	checkTarget(t, "a receiver's target", peer.Target, &wire.Target{})

	peer = c.attach(&wire.Attach{Role: wire.RoleSender, SndSettleMode: wire.SenderSettleModeMixed, InitialDeliveryCount: u32(0),
		Source: &wire.Source{Address: "conformance-source", Timeout: 3, Capabilities: []wire.Symbol{"conformance-unknown"}},
		Target: &wire.Target{Address: addr, ExpiryPolicy: wire.TerminusExpiryPolicyConnectionClose, Capabilities: []wire.Symbol{"queue", "topic", "durable"}}})
	checkSource(t, "a sender's source", peer.Source, &wire.Source{})
	checkTarget(t, "a sender's target", peer.Target, &wire.Target{Address: addr, Capabilities: []wire.Symbol{"queue"}})
}

// checkSource compares a source with want, the defaults (durable none, expiry-policy
// session-end, timeout 0) implied.
func checkSource(t testingT, what string, got, want *wire.Source) {
	t.Helper()
	if got == nil {
		t.Errorf("%s is null, want %+v", what, *want)
		return
	}
	if got.Address != want.Address || got.Durable != wire.TerminusDurabilityNone || !sessionEnd(got.ExpiryPolicy) ||
		got.Timeout != 0 || got.Dynamic != want.Dynamic || got.DistributionMode != want.DistributionMode ||
		!slices.Equal(got.Capabilities, want.Capabilities) || got.DefaultOutcome != nil || len(got.Outcomes) > 0 ||
		len(got.DynamicNodeProperties) > 0 {
		t.Errorf("%s is %+v, want %+v (durable none, expiry-policy session-end, timeout 0)", what, *got, *want)
	}
}

// checkTarget compares a target with want, as checkSource does.
func checkTarget(t testingT, what string, got, want *wire.Target) {
	t.Helper()
	if got == nil {
		t.Errorf("%s is null, want %+v", what, *want)
		return
	}
	if got.Address != want.Address || got.Durable != wire.TerminusDurabilityNone || !sessionEnd(got.ExpiryPolicy) ||
		got.Timeout != 0 || got.Dynamic != want.Dynamic || !slices.Equal(got.Capabilities, want.Capabilities) ||
		len(got.DynamicNodeProperties) > 0 {
		t.Errorf("%s is %+v, want %+v (durable none, expiry-policy session-end, timeout 0)", what, *got, *want)
	}
}

func sessionEnd(p wire.TerminusExpiryPolicy) bool {
	return p == "" || p == wire.TerminusExpiryPolicySessionEnd
}

// legacyTopicFilter is the descriptor of apache.org:legacy-amqp-topic-binding:string.
const legacyTopicFilter = uint64(0x0000468C00000001)

// brokerTopicSourceFilter: a receiver on a topic gets the subscription's binding back
// as a filter, {default-subject-filter: legacy-amqp-topic-binding "#"}, and no
// distribution-mode; a topic echoes the topic capability, not queue.
func brokerTopicSourceFilter(t testingT, h *Harness) {
	h.needsKind(t, Broker)
	h.needs(t, Multicast)
	addr := h.topic("filter")
	c := connectFrames(t, h)
	peer := c.attach(&wire.Attach{Role: wire.RoleReceiver, SndSettleMode: wire.SenderSettleModeMixed,
		Source: &wire.Source{Address: addr, Capabilities: []wire.Symbol{"topic"}}, Target: &wire.Target{}})
	if peer.Source == nil {
		t.Fatalf("the subscription was refused")
	}
	checkSource(t, "a subscriber's source, filter aside", &wire.Source{Address: peer.Source.Address, Durable: peer.Source.Durable,
		ExpiryPolicy: peer.Source.ExpiryPolicy, Timeout: peer.Source.Timeout, DistributionMode: peer.Source.DistributionMode,
		Capabilities: peer.Source.Capabilities}, &wire.Source{Address: addr, Capabilities: []wire.Symbol{"topic"}})
	f, ok := peer.Source.Filter["default-subject-filter"].(*wire.Described)
	if len(peer.Source.Filter) != 1 || !ok || f.Descriptor != legacyTopicFilter || f.Value != "#" {
		t.Errorf("a subscriber's source has filter %#v, want {default-subject-filter: legacy-amqp-topic-binding(0x468c00000001) \"#\"}", peer.Source.Filter)
	}
	peer = c.attach(&wire.Attach{Role: wire.RoleSender, SndSettleMode: wire.SenderSettleModeMixed, InitialDeliveryCount: u32(0),
		Source: &wire.Source{}, Target: &wire.Target{Address: addr, Capabilities: []wire.Symbol{"topic", "queue"}}})
	checkTarget(t, "a topic sender's target", peer.Target, &wire.Target{Address: addr, Capabilities: []wire.Symbol{"topic"}})
}

// brokerRefusesNullTerminus: a sending link with a null target, and a receiving link
// with a null source or one with neither address nor dynamic, are refused with
// amqp:precondition-failed, the node's side null and the other an empty terminus.
func brokerRefusesNullTerminus(t testingT, h *Harness) {
	h.needsKind(t, Broker)
	c := connectFrames(t, h)
	peer, d := c.refused(&wire.Attach{Role: wire.RoleSender, SndSettleMode: wire.SenderSettleModeMixed, InitialDeliveryCount: u32(0),
		Source: &wire.Source{Address: "conformance-source"}})
	if peer.Target != nil {
		t.Errorf("a null target was answered with target %+v, want null", *peer.Target)
	}
	checkSource(t, "the source answering a null target", peer.Source, &wire.Source{})
	checkRefusal(t, "a null target", d, wire.ErrCondPreconditionFailed, "No target specified!")
	for what, src := range map[string]*wire.Source{"a null source": nil, "a source without address": {}} {
		peer, d = c.refused(&wire.Attach{Role: wire.RoleReceiver, SndSettleMode: wire.SenderSettleModeMixed,
			Source: src, Target: &wire.Target{Address: "conformance-target"}})
		if peer.Source != nil {
			t.Errorf("%s was answered with source %+v, want null", what, *peer.Source)
		}
		checkTarget(t, "the target answering "+what, peer.Target, &wire.Target{})
		checkRefusal(t, what, d, wire.ErrCondPreconditionFailed, "No source specified!")
	}
}

// checkRefusal checks the detach that follows a refused attach.
func checkRefusal(t testingT, what string, d *wire.Detach, cond wire.ErrCond, desc string) {
	t.Helper()
	if !d.Closed || d.Error == nil || d.Error.Condition != cond || d.Error.Description != desc {
		t.Errorf("%s: detach closed=%v error %v, want closed with %s %q", what, d.Closed, d.Error, cond, desc)
	}
}

// brokerNodeNotFound: an address that names no node and that no pattern matches, and
// $management (qpidd has no AMQP management node), are refused amqp:not-found "Node
// not found: <address>", for senders and receivers alike.
func brokerNodeNotFound(t testingT, h *Harness) {
	h.needsKind(t, Broker)
	c := connectFrames(t, h)
	for _, addr := range []string{uniqueName("conformance-no-node"), "$management"} {
		peer, d := c.refused(&wire.Attach{Role: wire.RoleSender, SndSettleMode: wire.SenderSettleModeMixed, InitialDeliveryCount: u32(0),
			Source: &wire.Source{}, Target: &wire.Target{Address: addr}})
		if peer.Target != nil {
			t.Errorf("a sender to %q was answered with target %+v, want null", addr, *peer.Target)
		}
		checkRefusal(t, "a sender to "+addr, d, wire.ErrCondNotFound, "Node not found: "+addr)
		peer, d = c.refused(&wire.Attach{Role: wire.RoleReceiver, SndSettleMode: wire.SenderSettleModeMixed,
			Source: &wire.Source{Address: addr}, Target: &wire.Target{}})
		if peer.Source != nil {
			t.Errorf("a receiver from %q was answered with source %+v, want null", addr, *peer.Source)
		}
		checkRefusal(t, "a receiver from "+addr, d, wire.ErrCondNotFound, "Node not found: "+addr)
	}
}

// brokerDynamicNodes: a dynamic source and a dynamic target both get a queue named
// <container-id>_<link-name>, answered with dynamic false (the source with
// distribution-mode move); the sender to a dynamic target gets credit 500. Once the
// dynamic receiver detaches its node is gone: a sender to it is refused amqp:not-found.
func brokerDynamicNodes(t testingT, h *Harness) {
	h.needsKind(t, Broker)
	h.needs(t, DynamicSource)
	cid := "conformance-" + randomHex()
	c := connectFramesAs(t, h, cid)
	rcvName, sndName := "reply-"+randomHex(), "dyn-target-"+randomHex()
	rh := c.next
	peer := c.attach(&wire.Attach{Name: rcvName, Role: wire.RoleReceiver, SndSettleMode: wire.SenderSettleModeMixed,
		Source: &wire.Source{Dynamic: true}, Target: &wire.Target{}})
	want := cid + "_" + rcvName
	checkSource(t, "a dynamic source", peer.Source, &wire.Source{Address: want, DistributionMode: "move"})
	sh := c.next
	peer = c.attach(&wire.Attach{Name: sndName, Role: wire.RoleSender, SndSettleMode: wire.SenderSettleModeMixed, InitialDeliveryCount: u32(0),
		Source: &wire.Source{}, Target: &wire.Target{Dynamic: true}})
	checkTarget(t, "a dynamic target", peer.Target, &wire.Target{Address: cid + "_" + sndName})
	if f := c.linkFlow(sh, caseTimeLeft(t)); f == nil || f.LinkCredit == nil || *f.LinkCredit != 500 {
		t.Errorf("the sender to a dynamic target got no credit 500: %+v", f)
	}
	c.detach(rh)
	peer, d := connectFrames(t, h).refused(&wire.Attach{Role: wire.RoleSender, SndSettleMode: wire.SenderSettleModeMixed, InitialDeliveryCount: u32(0),
		Source: &wire.Source{}, Target: &wire.Target{Address: want}})
	if peer.Target != nil {
		t.Errorf("a sender to the deleted dynamic node was answered with target %+v, want null", *peer.Target)
	}
	checkRefusal(t, "a sender to the deleted dynamic node", d, wire.ErrCondNotFound, "Node not found: "+want)
}

// brokerDynamicNodeKeptWhileUsed: a dynamic node lives as long as any link uses it
// (qpidd's delete-if-unused), not only its creator: after the dynamic receiver
// detaches, another receiver of the same node still gets what a sender sends there.
func brokerDynamicNodeKeptWhileUsed(t testingT, h *Harness) {
	h.needsKind(t, Broker)
	h.needs(t, DynamicSource)
	owner := connectFrames(t, h)
	oh := owner.next
	peer := owner.attach(&wire.Attach{Role: wire.RoleReceiver, SndSettleMode: wire.SenderSettleModeMixed,
		Source: &wire.Source{Dynamic: true}, Target: &wire.Target{}})
	if peer.Source == nil || peer.Source.Address == "" {
		t.Fatalf("the dynamic source was answered %+v, want an address", peer.Source)
	}
	addr := peer.Source.Address
	other := connectFrames(t, h)
	rh, _ := other.receiverLink(addr)
	other.flow(rh, 0, 10, false)
	owner.detach(oh)
	s := connectFrames(t, h)
	sh, speer := s.senderLink(addr, wire.SenderSettleModeMixed)
	if speer.Target == nil {
		t.Fatalf("a sender to the dynamic node was refused once its creator detached: %v", expect[*wire.Detach](s).Error)
	}
	if f := s.linkFlow(sh, caseTimeLeft(t)); f == nil || f.LinkCredit == nil || *f.LinkCredit == 0 {
		t.Fatalf("no credit for the sender to the dynamic node")
	}
	s.transfer(sh, textMessage("still used"), false)
	if d := expect[*wire.Disposition](s); !d.Settled {
		t.Errorf("the sender's delivery was not settled: %+v", d)
	} else if _, ok := d.State.(*wire.Accepted); !ok {
		t.Errorf("the sender's delivery ended %T, want accepted", d.State)
	}
	if _, m := other.delivery(); string(m.Data[0]) != "still used" {
		t.Errorf("the other receiver got %q", m.Data[0])
	}
}

// collectOutcomes reads dispositions (single or ranges) until every delivery-id in ids
// has a settled outcome, and returns them by id.
func collectOutcomes(t testingT, c *frames, ids ...uint32) map[uint32]wire.DeliveryState {
	t.Helper()
	out := map[uint32]wire.DeliveryState{}
	for len(out) < len(ids) {
		d := expect[*wire.Disposition](c)
		last := d.First
		if d.Last != nil {
			last = *d.Last
		}
		for _, id := range ids {
			if d.Settled && id-d.First <= last-d.First {
				out[id] = d.State
			}
		}
	}
	return out
}

// anonymousSender attaches a sender with an empty target (address null: the anonymous
// relay) and waits for its credit.
func anonymousSender(t testingT, c *frames) uint32 {
	t.Helper()
	handle := c.next
	peer := c.attach(&wire.Attach{Role: wire.RoleSender, SndSettleMode: wire.SenderSettleModeMixed, InitialDeliveryCount: u32(0),
		Source: &wire.Source{}, Target: &wire.Target{}})
	if peer.Target == nil {
		t.Fatalf("the anonymous relay link was refused: %v", expect[*wire.Detach](c).Error)
	}
	if f := c.linkFlow(handle, caseTimeLeft(t)); f == nil || f.LinkCredit == nil || *f.LinkCredit == 0 {
		t.Fatalf("no credit on the anonymous relay link")
	}
	return handle
}

func toMessage(to, body string) *wire.Message {
	m := textMessage(body)
	if to != "" {
		m.Properties = &wire.Properties{To: to}
	}
	return m
}

// brokerAnonymousRelayAcceptsAll: qpidd accepts every message on an anonymous relay
// link. One whose to names an existing queue is stored there; one whose to names no
// node, names a queue no link has made yet (the relay creates no node by pattern), or
// that has no to, is dropped.
func brokerAnonymousRelayAcceptsAll(t testingT, h *Harness) {
	h.needsKind(t, Broker)
	h.needs(t, AnonymousRelay)
	kept, fresh := h.queue("relay-kept"), h.queue("relay-fresh")
	r := connectFrames(t, h)
	kh, _ := r.receiverLink(kept) // makes the queue; no credit yet
	c := connectFrames(t, h)
	handle := anonymousSender(t, c)
	ids := []uint32{
		c.transfer(handle, toMessage(uniqueName("conformance-nowhere"), "unknown"), false),
		c.transfer(handle, toMessage(fresh, "fresh"), false),
		c.transfer(handle, toMessage("", "no to"), false),
		c.transfer(handle, toMessage(kept, "kept"), false),
	}
	for id, state := range collectOutcomes(t, c, ids...) {
		if _, ok := state.(*wire.Accepted); !ok {
			t.Errorf("delivery %d (%s) ended %T %+v, want accepted", id, []string{"unknown", "fresh", "no to", "kept"}[id-ids[0]], state, state)
		}
	}
	r.flow(kh, 0, 10, false)
	if _, m := r.delivery(); string(m.Data[0]) != "kept" {
		t.Errorf("the existing queue got %q, want the message relayed to it", m.Data[0])
	}
	f := connectFrames(t, h)
	fh, _ := f.receiverLink(fresh)
	f.flow(fh, 0, 10, false)
	if _, m := f.deliveryWithin(quietPeriod); m != nil {
		t.Errorf("a queue no link had made got %q through the relay: the relay must not create nodes", m.Data[0])
	}
}

// brokerQueueGoesWhenUnusedAndEmpty: a queue made on demand by a pattern is deleted
// once no link uses it and it holds no message (qpidd's delete-if-unused-and-empty):
// a message relayed to it afterwards is dropped, and a receiver attaching later gets
// nothing.
func brokerQueueGoesWhenUnusedAndEmpty(t testingT, h *Harness) {
	h.needsKind(t, Broker)
	h.needs(t, AnonymousRelay)
	addr := h.queue("unused")
	c := connectFrames(t, h)
	rh, _ := c.receiverLink(addr)
	c.detach(rh)
	handle := anonymousSender(t, c)
	id := c.transfer(handle, toMessage(addr, "too late"), false)
	if _, ok := collectOutcomes(t, c, id)[id].(*wire.Accepted); !ok {
		t.Errorf("the relayed message was not accepted")
	}
	rh, _ = c.receiverLink(addr)
	c.flow(rh, 0, 10, false)
	if _, m := c.deliveryWithin(quietPeriod); m != nil {
		t.Errorf("got %q: the queue outlived its last link while empty", m.Data[0])
	}
}

// qpiddHeader is the header section qpidd writes on a first delivery of a message
// that came without one: durable false, priority 4, ttl null, first-acquirer true.
var qpiddHeader = []byte{0x00, 0x53, 0x70, 0xc0, 0x06, 0x04, 0x42, 0x50, 0x04, 0x40, 0x41}

// brokerHeaderOnDelivery: qpidd writes a header of its own on every delivery and
// forwards the rest of the message unchanged: priority 4 when the message has none,
// the ttl that remains, first-acquirer true and delivery-count 0 on a first delivery
// (whatever the sender put there), durable as sent; a message without a header gets
// one.
func brokerHeaderOnDelivery(t testingT, h *Harness) {
	h.needsKind(t, Broker)
	addr := h.queue("header")
	s := connectFrames(t, h)
	sh, _ := s.senderLink(addr, wire.SenderSettleModeMixed)
	if f := s.linkFlow(sh, caseTimeLeft(t)); f == nil || f.LinkCredit == nil || *f.LinkCredit < 2 {
		t.Fatalf("no credit to send 2 messages: %+v", f)
	}
	plain := textMessage("plain")
	pri := uint8(7)
	marked := &wire.Message{Header: &wire.Header{Durable: true, Priority: &pri, TTL: 60000, DeliveryCount: 3}, Data: [][]byte{[]byte("marked")}}
	s.transfer(sh, plain, true)
	s.transfer(sh, marked, true)

	r := connectFrames(t, h)
	rh, _ := r.receiverLink(addr)
	r.flow(rh, 0, 10, false)
	_, raw := r.rawDelivery()
	body, _ := plain.AppendTo(nil)
	if want := append(append([]byte{}, qpiddHeader...), body...); !bytes.Equal(raw, want) {
		t.Errorf("a message sent without a header arrived as\n%x, want qpidd's header then the message unchanged\n%x", raw, want)
	}
	_, m := r.delivery()
	hd := m.Header
	switch {
	case hd == nil:
		t.Errorf("the second message arrived without a header")
	case !hd.Durable || hd.Priority == nil || *hd.Priority != 7 || !hd.FirstAcquirer || hd.DeliveryCount != 0:
		t.Errorf("header %+v (priority %v), want durable, priority 7, first-acquirer, delivery-count 0", *hd, ptrU8(hd.Priority))
	case hd.TTL == 0 || hd.TTL >= 60000:
		t.Errorf("ttl %d, want what remains of the 60000 ms sent", hd.TTL)
	}
}

func ptrU8(p *uint8) any {
	if p == nil {
		return "absent"
	}
	return *p
}

// wantHeader checks a delivery's delivery-count and first-acquirer.
func wantHeader(t testingT, what string, m *wire.Message, count uint32, first bool) {
	t.Helper()
	if m.Header == nil {
		t.Errorf("%s: no header", what)
		return
	}
	if m.Header.DeliveryCount != count || m.Header.FirstAcquirer != first {
		t.Errorf("%s: delivery-count %d, first-acquirer %v; want %d, %v", what, m.Header.DeliveryCount, m.Header.FirstAcquirer, count, first)
	}
}

// brokerRedeliveryHeader: the header of a message delivered again, as qpidd counts:
// released (and modified without delivery-failed) leaves it a first delivery
// (delivery-count 0, first-acquirer true); modified with delivery-failed counts one,
// and first-acquirer is false from then on; a consumer that detaches holding it
// unsettled counts one more.
func brokerRedeliveryHeader(t testingT, h *Harness) {
	h.needsKind(t, Broker)
	h.needs(t, Redelivery)
	addr := h.queue("redelivery")
	s := connectFrames(t, h)
	sh, _ := s.senderLink(addr, wire.SenderSettleModeMixed)
	s.linkFlow(sh, caseTimeLeft(t))
	s.transfer(sh, textMessage("again"), true)

	r := connectFrames(t, h)
	rh, _ := r.receiverLink(addr)
	r.flow(rh, 0, 20, false)
	steps := []struct {
		what    string
		outcome wire.DeliveryState
		count   uint32
		first   bool
	}{
		{"first delivery", &wire.Released{}, 0, true},
		{"after released", &wire.Modified{}, 0, true},
		{"after modified", &wire.Modified{DeliveryFailed: true}, 0, true},
		{"after modified with delivery-failed", &wire.Released{}, 1, false},
		{"after released again", nil, 1, false},
	}
	for _, st := range steps {
		tr, m := r.delivery()
		wantHeader(t, st.what, m, st.count, st.first)
		if st.outcome != nil {
			r.settle(*tr.DeliveryID, st.outcome)
		}
	}
	r.detach(rh) // holding the message unsettled
	r2 := connectFrames(t, h)
	rh2, _ := r2.receiverLink(addr)
	r2.flow(rh2, 0, 10, false)
	_, m := r2.delivery()
	wantHeader(t, "after a consumer detached holding it", m, 2, false)
}

// brokerTopicCopiesSettled: qpidd sends a topic subscriber its copies settled unless
// the subscriber's link asked for snd-settle-mode unsettled, each with a header of a
// first delivery; the sender's unsettled delivery is accepted.
func brokerTopicCopiesSettled(t testingT, h *Harness) {
	h.needsKind(t, Broker)
	h.needs(t, Multicast)
	addr := h.topic("copies")
	r := connectFrames(t, h)
	modes := map[uint32]wire.SenderSettleMode{}
	for _, mode := range []wire.SenderSettleMode{wire.SenderSettleModeMixed, wire.SenderSettleModeUnsettled, wire.SenderSettleModeSettled} {
		handle := r.next
		r.attach(&wire.Attach{Role: wire.RoleReceiver, SndSettleMode: mode, Source: &wire.Source{Address: addr}, Target: &wire.Target{}})
		r.flow(handle, 0, 10, false)
		modes[handle] = mode
	}
	s := connectFrames(t, h)
	sh, _ := s.senderLink(addr, wire.SenderSettleModeMixed)
	s.linkFlow(sh, caseTimeLeft(t))
	id := s.transfer(sh, textMessage("copy"), false)
	if _, ok := collectOutcomes(t, s, id)[id].(*wire.Accepted); !ok {
		t.Errorf("the sender's delivery was not accepted")
	}
	for range modes {
		tr, m := r.delivery()
		mode := modes[r.local[tr.Handle]]
		if want := mode != wire.SenderSettleModeUnsettled; tr.Settled != want {
			t.Errorf("a subscriber asking snd-settle-mode %v got its copy settled=%v, want %v", mode, tr.Settled, want)
		}
		if hd := m.Header; hd == nil || !hd.FirstAcquirer || hd.Priority == nil || *hd.Priority != 4 {
			t.Errorf("a copy's header is %+v, want first-acquirer and priority 4", hd)
		}
	}
}

// brokerSubscriptionOutlivesConnection: a topic subscription whose link asked for
// snd-settle-mode unsettled, or whose source is durable, is a queue that outlives the
// connection (closed without detaching the link): what the topic gets meanwhile waits
// for the same container-id and link name to attach again. Other subscriptions go
// with their connection. Any subscription goes when its link is detached.
func brokerSubscriptionOutlivesConnection(t testingT, h *Harness) {
	h.needsKind(t, Broker)
	h.needs(t, Multicast)
	addr := h.topic("outlives")
	cid := "conformance-" + randomHex()
	subs := []struct {
		name string
		mode wire.SenderSettleMode
		src  wire.Source
		kept bool
	}{
		{"unsettled-" + randomHex(), wire.SenderSettleModeUnsettled, wire.Source{Address: addr}, true},
		{"durable-" + randomHex(), wire.SenderSettleModeMixed, wire.Source{Address: addr, Durable: wire.TerminusDurabilityConfiguration}, true},
		{"mixed-" + randomHex(), wire.SenderSettleModeMixed, wire.Source{Address: addr}, false},
	}
	attachAll := func(c *frames) map[uint32]int {
		byHandle := map[uint32]int{}
		for i, sub := range subs {
			src := sub.src
			handle := c.next
			c.attach(&wire.Attach{Name: sub.name, Role: wire.RoleReceiver, SndSettleMode: sub.mode, Source: &src, Target: &wire.Target{}})
			byHandle[handle] = i
		}
		return byHandle
	}
	first := connectFramesAs(t, h, cid)
	attachAll(first)
	first.closeConn()

	s := connectFrames(t, h)
	sh, _ := s.senderLink(addr, wire.SenderSettleModeMixed)
	s.linkFlow(sh, caseTimeLeft(t))
	id := s.transfer(sh, textMessage("while away"), false)
	collectOutcomes(t, s, id)

	again := connectFramesAs(t, h, cid)
	byHandle := attachAll(again)
	for handle := range byHandle {
		again.flow(handle, 0, 10, false)
	}
	got := map[int]bool{}
	for _, sub := range subs {
		if !sub.kept {
			continue
		}
		tr, m := again.delivery()
		k := byHandle[again.local[tr.Handle]]
		got[k] = true
		if string(m.Data[0]) != "while away" {
			t.Errorf("subscription %s got %q", subs[k].name, m.Data[0])
		}
	}
	if tr, _ := again.deliveryWithin(quietPeriod); tr != nil {
		got[byHandle[again.local[tr.Handle]]] = true
	}
	for i, sub := range subs {
		if got[i] != sub.kept {
			t.Errorf("subscription %s (snd-settle-mode %v, durable %v) got the message sent while its connection was closed: %v, want %v",
				sub.name, sub.mode, sub.src.Durable, got[i], sub.kept)
		}
	}

	// Detached, every subscription is gone.
	for handle := range byHandle {
		again.detach(handle)
	}
	id = s.transfer(sh, textMessage("after detach"), false)
	collectOutcomes(t, s, id)
	last := connectFramesAs(t, h, cid)
	for handle := range attachAll(last) {
		last.flow(handle, 0, 10, false)
	}
	if tr, m := last.deliveryWithin(quietPeriod); tr != nil {
		t.Errorf("a subscription got %q sent after its link was detached", m.Data[0])
	}
}

// brokerSubscriptionNameInUse: a topic subscription is a queue named
// <container-id>_<link-name> that one consumer holds: a second link of that name from
// the same container-id is refused while the first is attached (qpidd: amqp:internal-
// error, resource-locked).
func brokerSubscriptionNameInUse(t testingT, h *Harness) {
	h.needsKind(t, Broker)
	h.needs(t, Multicast)
	addr := h.topic("in-use")
	cid, name := "conformance-"+randomHex(), "sub-"+randomHex()
	sub := &wire.Attach{Name: name, Role: wire.RoleReceiver, SndSettleMode: wire.SenderSettleModeMixed,
		Source: &wire.Source{Address: addr}, Target: &wire.Target{}}
	first := *sub
	if peer := connectFramesAs(t, h, cid).attach(&first); peer.Source == nil {
		t.Fatalf("the first subscription was refused")
	}
	second := *sub
	peer, d := connectFramesAs(t, h, cid).refused(&second)
	if peer.Source != nil {
		t.Errorf("the second subscription of the same name was answered with source %+v, want null", *peer.Source)
	}
	prefix := "resource-locked: Queue " + cid + "_" + name + " already has consumers. Exclusive access denied."
	if d.Error == nil || d.Error.Condition != wire.ErrCondInternalError || !strings.HasPrefix(d.Error.Description, prefix) {
		t.Errorf("the second subscription was refused with %v, want %s %q", d.Error, wire.ErrCondInternalError, prefix)
	}
}

// brokerSenderCreditToppedUp: qpidd tops a sender's credit back up to 500 after every
// batch of deliveries it reads, before it settles them: the flow comes first.
func brokerSenderCreditToppedUp(t testingT, h *Harness) {
	h.needsKind(t, Broker)
	addr := h.queue("top-up")
	c := connectFrames(t, h)
	sh, _ := c.senderLink(addr, wire.SenderSettleModeMixed)
	if f := c.linkFlow(sh, caseTimeLeft(t)); f == nil || f.LinkCredit == nil || *f.LinkCredit != 500 {
		t.Fatalf("the sender was granted %+v, want credit 500", f)
	}
	c.transfer(sh, textMessage("one"), false)
	var topUp *wire.Flow
	for {
		f, err := c.Next()
		if err != nil {
			t.Fatalf("waiting for the outcome: %v", err)
		}
		if fl, ok := f.Body.(*wire.Flow); ok && fl.Handle != nil && c.local[*fl.Handle] == sh {
			topUp = fl
			continue
		}
		if _, ok := f.Body.(*wire.Disposition); ok {
			break
		}
		t.Fatalf("waiting for the outcome, got %s", frameclient.Describe(f))
	}
	if topUp == nil || topUp.DeliveryCount == nil || *topUp.DeliveryCount != 1 || topUp.LinkCredit == nil || *topUp.LinkCredit != 500 {
		t.Errorf("before the disposition came flow %+v, want delivery-count 1 and credit 500 again", topUp)
	}
}

// brokerSettlesOnDetach: when a consumer detaches holding deliveries unsettled, qpidd
// settles each of them (a disposition settled, without state) before it answers the
// detach (Qpid Proton freeing the link); the messages go back to the queue.
func brokerSettlesOnDetach(t testingT, h *Harness) {
	h.needsKind(t, Broker)
	addr := h.queue("settle-on-detach")
	s := connectFrames(t, h)
	sh, _ := s.senderLink(addr, wire.SenderSettleModeMixed)
	s.linkFlow(sh, caseTimeLeft(t))
	for _, body := range []string{"one", "two", "three"} {
		s.transfer(sh, textMessage(body), true)
	}
	r := connectFrames(t, h)
	rh, _ := r.receiverLink(addr)
	r.flow(rh, 0, 3, false)
	var held []uint32
	for range 3 {
		tr, _ := r.delivery()
		held = append(held, *tr.DeliveryID)
	}
	r.settle(held[1], &wire.Accepted{})
	if err := r.Write(0, &wire.Detach{Handle: rh, Closed: true}); err != nil {
		t.Fatalf("detach: %v", err)
	}
	var settled []uint32
	for {
		f, err := r.Next()
		if err != nil {
			t.Fatalf("waiting for the answer to the detach: %v", err)
		}
		if _, ok := f.Body.(*wire.Detach); ok {
			break
		}
		switch b := f.Body.(type) {
		case *wire.Flow:
		case *wire.Disposition:
			if b.Role != wire.RoleSender || !b.Settled || b.State != nil {
				t.Errorf("before the detach came %s, want the broker settling without state", frameclient.Describe(f))
			}
			last := b.First
			if b.Last != nil {
				last = *b.Last
			}
			for id := b.First; ; id++ {
				settled = append(settled, id)
				if id == last {
					break
				}
			}
		default:
			t.Fatalf("waiting for the answer to the detach, got %s", frameclient.Describe(f))
		}
	}
	if want := []uint32{held[0], held[2]}; !slices.Equal(settled, want) {
		t.Errorf("the broker settled deliveries %v before answering the detach, want %v (those left unsettled)", settled, want)
	}
}
