package conformance

import (
	"bytes"
	"crypto/rand"
	"errors"
	"sort"

	amqp "github.com/Azure/go-amqp"

	"github.com/amqp1kit/amqp1kit/internal/frameclient"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// linkRouteCases are the cases of a router that link-routes addresses to a broker, as
// in the deployment guide's mixed deployment (qdrouterd in front, qpidd behind it, a
// connector of role route-container and linkRoute sections in both directions). They
// run when the Harness says where (LinkRoutePrefix, LinkRouteDownPrefix). Each was
// written against qdrouterd 1.19.0 link-routing to qpidd 1.39.0, frame by frame: the
// router passes each attach on to the broker, answers the client with the broker's
// answer (its termini; settle modes mixed and first whatever was asked), and from
// then on the link is the broker's: its credit, its store-and-forward settlement, its
// redeliveries, its refusals.
var linkRouteCases = map[string]func(t testingT, h *Harness){
	"LinkRouteAttachAnsweredByBroker":  linkRouteAttachAnsweredByBroker,
	"LinkRouteSettleModesMixed":        linkRouteSettleModesMixed,
	"LinkRouteStoresAndForwards":       linkRouteStoresAndForwards,
	"LinkRouteOutcomesToBroker":        linkRouteOutcomesToBroker,
	"LinkRouteCreditRelayed":           linkRouteCreditRelayed,
	"LinkRouteDrainAfterMessages":      linkRouteDrainAfterMessages,
	"LinkRouteBrokerRefusalRelayed":    linkRouteBrokerRefusalRelayed,
	"LinkRouteNoRouteWithoutContainer": linkRouteNoRouteWithoutContainer,
	"LinkRouteDetachGivesBack":         linkRouteDetachGivesBack,
	"LinkRouteLargeAndSettled":         linkRouteLargeAndSettled,
	"LinkRouteAbortGivesCreditBack":    linkRouteAbortGivesCreditBack,
}

// needsLinkRoute skips t unless h link-routes LinkRoutePrefix to a broker.
func (h *Harness) needsLinkRoute(t testingT) {
	t.Helper()
	if h.LinkRoutePrefix == "" {
		h.skipped = h.Name + " has no link route to a broker (Harness.LinkRoutePrefix)"
		t.Skipf("%s", h.skipped)
	}
}

// routedQueue is an address link-routed to a queue of the broker.
func (h *Harness) routedQueue(name string) string {
	return h.LinkRoutePrefix + ".unicast." + uniqueName(name)
}

// routedNowhere is an address link-routed to the broker, where it names no node.
func (h *Harness) routedNowhere(name string) string {
	return h.LinkRoutePrefix + "." + uniqueName(name)
}

// storeRouted sends bodies unsettled through the link route to addr and waits until
// the broker has accepted them all.
func storeRouted(t testingT, h *Harness, addr string, bodies ...string) {
	t.Helper()
	s := connectFrames(t, h)
	sh, _ := s.senderLink(addr, wire.SenderSettleModeMixed)
	if f := s.linkFlow(sh, caseTimeLeft(t)); f == nil || f.LinkCredit == nil || *f.LinkCredit < uint32(len(bodies)) {
		t.Fatalf("no credit from the broker for %d messages: flow %s", len(bodies), flowString(f))
	}
	var ids []uint32
	for _, b := range bodies {
		ids = append(ids, s.transfer(sh, textMessage(b), false))
	}
	for id, state := range collectOutcomes(t, s, ids...) {
		if _, ok := state.(*wire.Accepted); !ok {
			t.Fatalf("the broker settled message %d with %T, want accepted", id, state)
		}
	}
}

// linkRouteAttachAnsweredByBroker: the client's attach is answered with the broker's
// answer: qpidd's source for a queue says distribution-mode move; the termini carry
// the client's address and the expiry policy written out (session-end), settle modes
// mixed and first. A sender gets the broker's credit (qpidd's 500, not the router's
// link capacity of 250) at once, with no consumer anywhere: the broker stores.
func linkRouteAttachAnsweredByBroker(t testingT, h *Harness) {
	h.needsLinkRoute(t)
	addr := h.routedQueue("answer")
	c := connectFrames(t, h)
	sh, sp := c.senderLink(addr, wire.SenderSettleModeMixed)
	if sp.Target == nil || sp.Target.Address != addr || !sessionEnd(sp.Target.ExpiryPolicy) {
		t.Errorf("the sender's attach was answered with target %+v, want address %q, expiry session-end", sp.Target, addr)
	}
	if sp.Source == nil {
		t.Errorf("the sender's attach was answered with a null source")
	}
	f := c.linkFlow(sh, caseTimeLeft(t))
	if f == nil || f.LinkCredit == nil || *f.LinkCredit != 500 || f.DeliveryCount == nil || *f.DeliveryCount != 0 {
		t.Errorf("the sender got flow %s, want the broker's credit: delivery-count 0, link-credit 500", flowString(f))
	}
	_, rp := c.receiverLink(addr)
	switch {
	case rp.Source == nil:
		t.Errorf("the receiver's attach was answered with a null source")
	case rp.Source.Address != addr || rp.Source.DistributionMode != "move" || !sessionEnd(rp.Source.ExpiryPolicy):
		t.Errorf("the receiver's attach was answered with source %+v, want the broker's: address %q, distribution-mode move, expiry session-end", *rp.Source, addr)
	}
	if rp.Target == nil {
		t.Errorf("the receiver's attach was answered with a null target")
	}
	for _, p := range []*wire.Attach{sp, rp} {
		if p.SndSettleMode != wire.SenderSettleModeMixed || p.RcvSettleMode != wire.ReceiverSettleModeFirst {
			t.Errorf("attach %s answered snd-settle-mode %v, rcv-settle-mode %v; want mixed and first", p.Name, p.SndSettleMode, p.RcvSettleMode)
		}
	}
}

// linkRouteSettleModesMixed: the router attaches to the broker with snd-settle-mode
// mixed and rcv-settle-mode first whatever the client asked, and answers the client
// so: a receiver asking for settled and second, a sender asking for unsettled and
// second, both get mixed and first.
func linkRouteSettleModesMixed(t testingT, h *Harness) {
	h.needsLinkRoute(t)
	addr := h.routedQueue("modes")
	c := connectFrames(t, h)
	rp := c.attach(&wire.Attach{Role: wire.RoleReceiver, SndSettleMode: wire.SenderSettleModeSettled,
		RcvSettleMode: wire.ReceiverSettleModeSecond, Source: &wire.Source{Address: addr}, Target: &wire.Target{}})
	sp := c.attach(&wire.Attach{Role: wire.RoleSender, SndSettleMode: wire.SenderSettleModeUnsettled,
		RcvSettleMode: wire.ReceiverSettleModeSecond, Source: &wire.Source{}, Target: &wire.Target{Address: addr},
		InitialDeliveryCount: u32(0)})
	for _, p := range []*wire.Attach{rp, sp} {
		if p.Source == nil || p.Target == nil {
			t.Errorf("attach %s was refused: source %+v, target %+v", p.Name, p.Source, p.Target)
		}
		if p.SndSettleMode != wire.SenderSettleModeMixed || p.RcvSettleMode != wire.ReceiverSettleModeFirst {
			t.Errorf("attach %s answered snd-settle-mode %v, rcv-settle-mode %v; want mixed and first", p.Name, p.SndSettleMode, p.RcvSettleMode)
		}
	}
}

// linkRouteStoresAndForwards: through the link route the sender deals with the
// broker: its message is accepted once stored, before any consumer exists (a router
// alone would give it no credit), and a consumer attaching later gets it.
func linkRouteStoresAndForwards(t testingT, h *Harness) {
	h.needsLinkRoute(t)
	addr := h.routedQueue("store")
	snd := connect(t, h).sender(addr, nil)
	rc, err := snd.SendWithReceipt(caseContext(t), text("stored"), nil)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	if state := awaitReceipt(t, rc); !isAccepted(state) {
		t.Fatalf("the sender's delivery ended %T with no consumer, want accepted (stored by the broker)", state)
	}
	rcv := connect(t, h).receiver(addr, &amqp.ReceiverOptions{Credit: 10})
	m := mustReceive(t, rcv)
	if bodyOf(m) != "stored" {
		t.Fatalf("received %q, want %q", bodyOf(m), "stored")
	}
	if err := rcv.AcceptMessage(caseContext(t), m); err != nil {
		t.Errorf("accept: %v", err)
	}
}

// linkRouteOutcomesToBroker: a consumer's outcomes go to the broker, which acts on
// them as qpidd does: an accepted or rejected message is gone, a released one comes
// again as a first delivery, a modified one with delivery-failed comes again counted
// (delivery-count 1, first-acquirer false). The sender saw accepted at the store.
func linkRouteOutcomesToBroker(t testingT, h *Harness) {
	h.needsLinkRoute(t)
	addr := h.routedQueue("outcomes")
	storeRouted(t, h, addr, "accepted", "released", "rejected", "modified")
	r := connectFrames(t, h)
	rh, _ := r.receiverLink(addr)
	r.flow(rh, 0, 10, false)
	outcomes := map[string]wire.DeliveryState{
		"accepted": &wire.Accepted{},
		"released": &wire.Released{},
		"rejected": &wire.Rejected{Error: &wire.Error{Condition: wire.ErrCondNotAllowed, Description: "conformance"}},
		"modified": &wire.Modified{DeliveryFailed: true},
	}
	for range 4 {
		tr, m := r.delivery()
		state, ok := outcomes[string(m.Data[0])]
		if !ok {
			t.Fatalf("received %q", m.Data[0])
		}
		r.settle(*tr.DeliveryID, state)
	}
	again := map[string]*wire.Message{}
	for range 2 {
		tr, m := r.delivery()
		again[string(m.Data[0])] = m
		r.settle(*tr.DeliveryID, &wire.Accepted{})
	}
	if m := again["released"]; m == nil {
		t.Errorf("the released message did not come again (got %v)", keys(again))
	} else {
		wantHeader(t, "the released message again", m, 0, true)
	}
	if m := again["modified"]; m == nil {
		t.Errorf("the modified (delivery-failed) message did not come again (got %v)", keys(again))
	} else {
		wantHeader(t, "the modified message again", m, 1, false)
	}
	if _, m := r.deliveryWithin(quietPeriod); m != nil {
		t.Errorf("got %q once more: accepted and rejected messages are gone", m.Data[0])
	}
}

func keys(m map[string]*wire.Message) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// linkRouteCreditRelayed: the router passes a receiver's credit to the broker as it
// is and holds nothing back: with three messages stored and credit 1 the receiver gets
// one, and the rest once it grants more.
func linkRouteCreditRelayed(t testingT, h *Harness) {
	h.needsLinkRoute(t)
	addr := h.routedQueue("credit")
	storeRouted(t, h, addr, "m1", "m2", "m3")
	r := connectFrames(t, h)
	rh, _ := r.receiverLink(addr)
	r.flow(rh, 0, 1, false)
	if _, m := r.delivery(); string(m.Data[0]) != "m1" {
		t.Fatalf("received %q, want m1", m.Data[0])
	}
	if tr, m := r.deliveryWithin(quietPeriod); tr != nil {
		t.Fatalf("received %q beyond the credit of 1", m.Data[0])
	}
	r.flow(rh, 1, 5, false)
	for _, want := range []string{"m2", "m3"} {
		if _, m := r.delivery(); string(m.Data[0]) != want {
			t.Errorf("received %q, want %q", m.Data[0], want)
		}
	}
}

// linkRouteDrainAfterMessages: a receiver's drain goes to the broker and its answer
// comes back after the messages the broker had: with two stored and credit 5 with
// drain, two transfers, then a flow with delivery-count 5, link-credit 0 and drain.
func linkRouteDrainAfterMessages(t testingT, h *Harness) {
	h.needsLinkRoute(t)
	addr := h.routedQueue("drain")
	storeRouted(t, h, addr, "d1", "d2")
	r := connectFrames(t, h)
	rh, _ := r.receiverLink(addr)
	r.flow(rh, 0, 5, true)
	transfers := 0
	for {
		f, err := r.Next()
		if err != nil {
			t.Fatalf("waiting for the answer to the drain (after %d transfers): %v", transfers, err)
		}
		switch b := f.Body.(type) {
		case *wire.Transfer:
			transfers++
		case *wire.Flow:
			if b.Handle == nil || r.local[*b.Handle] != rh {
				continue
			}
			if transfers != 2 {
				t.Errorf("the drain was answered after %d transfers, want the 2 messages first", transfers)
			}
			if !b.Drain || b.LinkCredit == nil || *b.LinkCredit != 0 || b.DeliveryCount == nil || *b.DeliveryCount != 5 {
				t.Errorf("the drain was answered with flow %s, want delivery-count 5, link-credit 0, drain", flowString(b))
			}
			return
		default:
			t.Fatalf("waiting for the answer to the drain, got %s", frameclient.Describe(f))
		}
	}
}

// linkRouteBrokerRefusalRelayed: an attach the broker refuses (an address that is no
// node there) is answered as the broker answered it, through the router: an attach
// whose termini are empty but present, then the broker's detach (amqp:not-found "Node
// not found: <address>"). So a go-amqp receiver is attached, and its first receive
// fails with the broker's error.
func linkRouteBrokerRefusalRelayed(t testingT, h *Harness) {
	h.needsLinkRoute(t)
	addr := h.routedNowhere("refused")
	c := connectFrames(t, h)
	for _, a := range []*wire.Attach{
		{Role: wire.RoleReceiver, SndSettleMode: wire.SenderSettleModeMixed, Source: &wire.Source{Address: addr}, Target: &wire.Target{}},
		{Role: wire.RoleSender, SndSettleMode: wire.SenderSettleModeMixed, Source: &wire.Source{}, Target: &wire.Target{Address: addr}, InitialDeliveryCount: u32(0)},
	} {
		what := "a receiver"
		if a.Role == wire.RoleSender {
			what = "a sender"
		}
		peer, d := c.refused(a)
		if peer.Source == nil || peer.Target == nil || peer.Source.Address != "" || peer.Target.Address != "" {
			t.Errorf("%s's attach was answered with source %+v, target %+v; want both present and empty (the broker's answer as qdrouterd relays it)", what, peer.Source, peer.Target)
		}
		checkRefusal(t, what, d, wire.ErrCondNotFound, "Node not found: "+addr)
	}

	rcv, err := connect(t, h).sess.NewReceiver(caseContext(t), h.routedNowhere("refused-go-amqp"), nil)
	if err != nil {
		t.Fatalf("go-amqp's NewReceiver failed (%v): through the link route the attach is answered with terminus, then detached", err)
	}
	_, err = rcv.Receive(caseContext(t), nil)
	var le *amqp.LinkError
	if !errors.As(err, &le) || le.RemoteErr == nil || le.RemoteErr.Condition != amqp.ErrCondNotFound {
		t.Errorf("go-amqp's first receive returned %v, want the broker's amqp:not-found detach", err)
	}
}

// linkRouteNoRouteWithoutContainer: while the route container of a link route is not
// connected, an attach to it is refused by the router: a null terminus on the router's
// side (the receiver's source, the sender's target), the client's other terminus as
// sent, then a detach with qd:no-route-to-dest "No route to the destination node".
func linkRouteNoRouteWithoutContainer(t testingT, h *Harness) {
	if h.LinkRouteDownPrefix == "" {
		h.skipped = h.Name + " has no link route to a route container that is down (Harness.LinkRouteDownPrefix)"
		t.Skipf("%s", h.skipped)
	}
	addr := h.LinkRouteDownPrefix + "." + uniqueName("down")
	c := connectFrames(t, h)
	peer, d := c.refused(&wire.Attach{Role: wire.RoleReceiver, SndSettleMode: wire.SenderSettleModeMixed,
		Source: &wire.Source{Address: addr}, Target: &wire.Target{Address: "conformance-target"}})
	if peer.Source != nil {
		t.Errorf("a receiver's refusal has source %+v, want null", *peer.Source)
	}
	if peer.Target == nil || peer.Target.Address != "conformance-target" {
		t.Errorf("a receiver's refusal has target %+v, want the client's", peer.Target)
	}
	checkRefusal(t, "a receiver", d, "qd:no-route-to-dest", "No route to the destination node")
	peer, d = c.refused(&wire.Attach{Role: wire.RoleSender, SndSettleMode: wire.SenderSettleModeMixed,
		Source: &wire.Source{Address: "conformance-source"}, Target: &wire.Target{Address: addr}, InitialDeliveryCount: u32(0)})
	if peer.Target != nil {
		t.Errorf("a sender's refusal has target %+v, want null", *peer.Target)
	}
	if peer.Source == nil || peer.Source.Address != "conformance-source" {
		t.Errorf("a sender's refusal has source %+v, want the client's", peer.Source)
	}
	checkRefusal(t, "a sender", d, "qd:no-route-to-dest", "No route to the destination node")

	_, err := connect(t, h).sess.NewSender(caseContext(t), addr, nil)
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Condition != "qd:no-route-to-dest" {
		t.Errorf("go-amqp's NewSender returned %v, want the refusal qd:no-route-to-dest", err)
	}
}

// linkRouteDetachGivesBack: a consumer that detaches holding messages unsettled
// detaches from the broker, which gives them to the next consumer, counted as
// redelivered (delivery-count 1).
func linkRouteDetachGivesBack(t testingT, h *Harness) {
	h.needsLinkRoute(t)
	addr := h.routedQueue("detach")
	storeRouted(t, h, addr, "held1", "held2")
	r := connectFrames(t, h)
	rh, _ := r.receiverLink(addr)
	r.flow(rh, 0, 10, false)
	r.delivery()
	r.delivery()
	r.detach(rh)
	r2 := connectFrames(t, h)
	rh2, _ := r2.receiverLink(addr)
	r2.flow(rh2, 0, 10, false)
	got := map[string]bool{}
	for range 2 {
		_, m := r2.delivery()
		got[string(m.Data[0])] = true
		wantHeader(t, "a message given back by a detached consumer", m, 1, false)
	}
	if !got["held1"] || !got["held2"] {
		t.Errorf("the next consumer got %v, want held1 and held2", got)
	}
}

// linkRouteLargeAndSettled: a message of 200 KB (many frames of the router's 16384)
// and a pre-settled one cross the link route whole.
func linkRouteLargeAndSettled(t testingT, h *Harness) {
	h.needsLinkRoute(t)
	addr := h.routedQueue("large")
	big := make([]byte, 200<<10)
	_, _ = rand.Read(big)
	snd := connect(t, h).sender(addr, nil)
	if err := snd.Send(caseContext(t), amqp.NewMessage(big), nil); err != nil {
		t.Fatalf("send 200 KB: %v", err)
	}
	if err := settled(caseContext(t), snd, text("pre-settled")); err != nil {
		t.Fatalf("send pre-settled: %v", err)
	}
	rcv := connect(t, h).receiver(addr, &amqp.ReceiverOptions{Credit: 10})
	m := mustReceive(t, rcv)
	if !bytes.Equal(m.GetData(), big) {
		t.Errorf("the 200 KB message arrived as %d bytes, not the ones sent", len(m.GetData()))
	}
	_ = rcv.AcceptMessage(caseContext(t), m)
	if m := mustReceive(t, rcv); bodyOf(m) != "pre-settled" {
		t.Errorf("received %q, want the pre-settled message", bodyOf(m))
	}
}

// linkRouteAbortGivesCreditBack: a client sender aborts a delivery half sent on a
// link-routed link: the link stays, the client gets a flow with its delivery-count
// past the aborted delivery and the broker's credit (500) again, and the next message
// on the same link is stored.
func linkRouteAbortGivesCreditBack(t testingT, h *Harness) {
	h.needsLinkRoute(t)
	addr := h.routedQueue("abort")
	s := connectFrames(t, h)
	sh, _ := s.senderLink(addr, wire.SenderSettleModeMixed)
	if f := s.linkFlow(sh, caseTimeLeft(t)); f == nil || f.LinkCredit == nil || *f.LinkCredit != 500 {
		t.Fatalf("the sender got flow %s, want the broker's credit 500", flowString(f))
	}
	s.abortedTransfer(sh, textMessage(string(bytes.Repeat([]byte("a"), 600))))
	f := s.linkFlow(sh, caseTimeLeft(t))
	if f == nil || f.DeliveryCount == nil || *f.DeliveryCount != 1 || f.LinkCredit == nil || *f.LinkCredit != 500 {
		t.Fatalf("after the abort the sender got flow %s, want delivery-count 1, link-credit 500", flowString(f))
	}
	id := s.transfer(sh, textMessage("after"), false)
	if state := collectOutcomes(t, s, id)[id]; !isWireAccepted(state) {
		t.Errorf("the message after the abort ended %T, want accepted (stored)", state)
	}
}
