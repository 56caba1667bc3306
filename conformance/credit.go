package conformance

import (
	"strconv"
	"time"
)

// drainWithCreditEchoed: a drain on a source with nothing to send comes back at once
// with the credit spent (part 2.6.7): delivery-count advanced by the credit, credit 0,
// drain set. Written by hand, as one flow carrying credit and drain, because go-amqp
// may merge an IssueCredit that has not gone out yet into its drain flow with credit 0
// (see drainWithNoCreditNotAnswered).
func drainWithCreditEchoed(t T, h *Harness) {
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
func drainWithNoCreditNotAnswered(t T, h *Harness) {
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
func caseTimeLeft(t T) time.Duration {
	if d, ok := caseContext(t).Deadline(); ok {
		return time.Until(d)
	}
	return 20 * time.Second
}
