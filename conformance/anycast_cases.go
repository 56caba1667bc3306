package conformance

import (
	"fmt"
	"slices"
	"strconv"
	"time"
)

// anycastCases are how qdrouterd 1.19.0 gives a message to a consumer (anycast: one
// consumer; multicast: each): when it arrives, whatever the consumers' credit (its
// forwarders look at what each consumer holds, not at its credit), and it waits on
// that consumer's undelivered list for credit; a pre-settled message that finds that list at the link capacity
// drops the pre-settled ones on it but the first (qdr_forward_deliver_CT).
var anycastCases = map[string]func(t testingT, h *Harness){
	"RouterAnycastGivenWithoutCredit":                routerAnycastGivenWithoutCredit,
	"RouterPresettledDroppedAtLinkCapacity":          routerPresettledDroppedAtLinkCapacity,
	"RouterMulticastPresettledDroppedAtLinkCapacity": routerMulticastPresettledDroppedAtLinkCapacity,
	"RouterUndeliveredReleasedOnDetach":              routerUndeliveredReleasedOnDetach,
}

// twoConsumers attaches two consumers of addr, each on a connection of its own: a
// first that grants no credit (ah is its link) and then b, which grants credit.
func twoConsumers(t testingT, h *Harness, addr string, credit uint32) (a *frames, ah uint32, b *frames) {
	t.Helper()
	a = connectFrames(t, h)
	ah, _ = a.receiverLink(addr)
	b = connectFrames(t, h)
	bh, _ := b.receiverLink(addr)
	b.flow(bh, 0, credit, false)
	return a, ah, b
}

// collect returns the bodies of the deliveries that come within quiet of each other.
func (c *frames) collect(quiet time.Duration) []string {
	c.t.Helper()
	var got []string
	for {
		_, m := c.deliveryWithin(quiet)
		if m == nil {
			return got
		}
		got = append(got, string(m.Data[0]))
	}
}

// routerAnycastGivenWithoutCredit: two consumers of an address, the first attached
// with no credit, the second with credit 10; four unsettled messages. On a balanced
// address the router gives each message to the consumer holding the fewest (the
// first in attach order on a tie), on a closest one the consumers take turns: either
// way the second gets m1 and m3 at once, and the first gets m0 and m2 once it grants
// credit.
func routerAnycastGivenWithoutCredit(t testingT, h *Harness) {
	h.needsKind(t, Router)
	for _, addr := range []string{
		"openstack.org/om/rpc/anycast/conformance." + uniqueName("given-balanced"),
		h.queue("given-closest"),
	} {
		a, ah, b := twoConsumers(t, h, addr, 10)
		s := connectFrames(t, h)
		sh, _ := s.senderLink(addr, 0)
		s.awaitCredit(t, sh)
		for i := range 4 {
			s.transfer(sh, textMessage(fmt.Sprint("m", i)), false)
		}
		gotB := b.collect(time.Second)
		a.flow(ah, 0, 10, false)
		gotA := a.collect(time.Second)
		if !slices.Equal(gotB, []string{"m1", "m3"}) || !slices.Equal(gotA, []string{"m0", "m2"}) {
			t.Errorf("%s: the consumer with credit got %v, the one without it %v once it granted credit; want [m1 m3] and [m0 m2]",
				addr, gotB, gotA)
		}
	}
}

// presettledFlood sends n pre-settled messages m0, m1, ... on the sender link sh of
// sc, never beyond its credit, and returns once the router has routed them all: each
// pre-settled message's credit comes back as it is routed, so the sender's credit
// then reaches n past the link capacity (250). limit is the delivery-count up to
// which the sender may send already (the credit of a flow the caller read).
func (sc *frames) presettledFlood(t testingT, sh, n, limit uint32) {
	t.Helper()
	credit := func(atLeast uint32) {
		t.Helper()
		for limit < atLeast {
			f := sc.linkFlow(sh, 2*time.Second)
			if f == nil {
				t.Fatalf("the sender's credit stopped at delivery-count %d, short of %d; want it back for each pre-settled message", limit, atLeast)
			}
			if f.DeliveryCount != nil && f.LinkCredit != nil {
				limit = *f.DeliveryCount + *f.LinkCredit
			}
		}
	}
	for i := range n {
		credit(i + 1)
		sc.transfer(sh, textMessage(fmt.Sprint("m", i)), true)
	}
	credit(n + 250)
}

// droppedAtCapacity is what a consumer without credit gets of n pre-settled messages
// once it grants credit: m0, then m250 to the last (m250 found the undelivered list
// at the link capacity and dropped m1 to m249).
func droppedAtCapacity(n int) []string {
	want := []string{"m0"}
	for i := 250; i < n; i++ {
		want = append(want, "m"+strconv.Itoa(i))
	}
	return want
}

// routerPresettledDroppedAtLinkCapacity: a consumer without credit and 300 pre-settled
// messages. The sender keeps its credit throughout; messages m0 to m249 wait on the
// consumer's undelivered list, m250 finds it at the link capacity (250) and drops
// m1 to m249; the consumer, once it grants credit, gets m0 and m250 to m299.
func routerPresettledDroppedAtLinkCapacity(t testingT, h *Harness) {
	h.needsKind(t, Router)
	rc, rh, sc, sh := idlePair(t, h, h.queue("presettled-dropped"))
	const n = 300
	sc.presettledFlood(t, sh, n, 250) // idlePair read the first flow, of 250
	rc.flow(rh, 0, 1000, false)
	if got, want := rc.collect(time.Second), droppedAtCapacity(n); !slices.Equal(got, want) {
		t.Errorf("the consumer got %d messages %v...; want %d: m0 and m250 to m%d", len(got), got[:min(len(got), 5)], len(want), n-1)
	}
}

// routerMulticastPresettledDroppedAtLinkCapacity: the same on a multicast address with
// a second consumer that has credit: every copy reaches the consumer with credit, and
// the one without it keeps m0 and m250 to m299 of its copies.
func routerMulticastPresettledDroppedAtLinkCapacity(t testingT, h *Harness) {
	h.needsKind(t, Router)
	addr := "openstack.org/om/rpc/multicast/conformance." + uniqueName("presettled-dropped")
	a, ah, b := twoConsumers(t, h, addr, 1000)
	sc := connectFrames(t, h)
	sh, _ := sc.senderLink(addr, 0)
	const n = 300
	sc.presettledFlood(t, sh, n, 0)
	if got := b.collect(time.Second); len(got) != n {
		t.Errorf("the consumer with credit got %d copies, want %d", len(got), n)
	}
	a.flow(ah, 0, 1000, false)
	if got, want := a.collect(time.Second), droppedAtCapacity(n); !slices.Equal(got, want) {
		t.Errorf("the consumer without credit got %d copies %v...; want %d: m0 and m250 to m%d", len(got), got[:min(len(got), 5)], len(want), n-1)
	}
}

// routerUndeliveredReleasedOnDetach: an unsettled message given to a consumer without
// credit is not passed to a consumer that attaches later, and when the first detaches
// it is not passed on either: the sender gets it back released (qdrouterd's link
// clean-up releases the undelivered deliveries' peers). On a closest address the
// first consumer takes the first message whichever order the router sees the
// message and the second consumer's attach in.
func routerUndeliveredReleasedOnDetach(t testingT, h *Harness) {
	h.needsKind(t, Router)
	addr := h.queue("undelivered-released")
	a, ah, s, sh := idlePair(t, h, addr)
	id := s.transfer(sh, textMessage("m0"), false)
	b := connectFrames(t, h)
	bh, _ := b.receiverLink(addr)
	b.flow(bh, 0, 10, false)
	if got := b.collect(500 * time.Millisecond); len(got) != 0 {
		t.Errorf("a consumer that came later got %v; want nothing (it was given to the first)", got)
	}
	a.detach(ah)
	if state := collectOutcomes(t, s, id)[id]; !isWireReleased(state) {
		t.Errorf("the sender's delivery ended %T, want released", state)
	}
	if got := b.collect(500 * time.Millisecond); len(got) != 0 {
		t.Errorf("the other consumer got %v after the first left; want nothing", got)
	}
}
