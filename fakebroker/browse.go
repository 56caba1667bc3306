package fakebroker

import (
	"errors"
	"sort"

	"github.com/amqp1kit/amqp1kit/internal/engine"
)

// A receiver on a queue that asks for distribution-mode copy is a browser, as in
// qpidd 1.39.0 (SubscriptionType BROWSER): it is sent the queue's available messages
// in sequence order, each once, and then each new one as it is stored, without
// taking them. The messages stay for the queue's consumers and other browsers; a
// message a consumer holds (acquired) is not shown; one released back to its place
// behind the browser's cursor is not shown again. A browser's deliveries go
// unsettled (unless its link asked for settled) with the header any consumer would
// get, and what it says of them changes nothing.

// browseLocked sends the browsers of q, as far as their credit goes, the available
// messages they have not been sent yet.
func (b *Broker) browseLocked(q *node) {
	for _, co := range q.consumers {
		if !co.browse || co.gone || co.link.Credit() == 0 {
			continue
		}
		var now int64
		if q.expiring > 0 {
			now = b.opts.Now().UnixNano()
		}
		live := q.avail[q.head:]
		i := sort.Search(len(live), func(i int) bool { return live[i].seq > co.browsed })
		for ; i < len(live) && co.link.Credit() > 0; i++ {
			if !b.stalled.Writable(co.link.Conn(), q) {
				break // held back until the browser reads (handler.Writable)
			}
			m := live[i]
			if now != 0 && m.expires != 0 && m.expires <= now {
				continue // left for expireLocked; not shown
			}
			ttlNow := now
			if m.ttlAt != 0 && ttlNow == 0 {
				ttlNow = b.opts.Now().UnixNano()
			}
			// No context: the browser's outcomes are not the message's.
			if _, err := co.link.Send(m.wireBytes(ttlNow), co.presettle, nil); err != nil {
				if !errors.Is(err, engine.ErrNoCredit) {
					co.gone = true
				}
				break
			}
			co.browsed = m.seq
		}
	}
}
