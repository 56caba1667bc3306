package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/amqp1kit/amqp1kit/internal/frameclient"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// holdingConsumer attaches a receiver with a frame client, grants credit and reads
// n deliveries without settling them; the caller then kills it (closes its socket
// with no close frame).
func holdingConsumer(addr, address string, credit uint32) (*frameclient.Conn, error) {
	nc, err := frameclient.Receivers(addr, []string{address})
	if err != nil {
		return nil, err
	}
	fc := frameclient.New(nc)
	zero, h := uint32(0), uint32(0)
	if err := fc.Write(0, &wire.Flow{NextIncomingID: &zero, IncomingWindow: 1 << 20, OutgoingWindow: 1 << 20,
		Handle: &h, DeliveryCount: &zero, LinkCredit: &credit}); err != nil {
		nc.Close()
		return nil, err
	}
	return fc, nil
}

// readDeliveries reads until n whole deliveries have arrived or within has passed.
func readDeliveries(fc *frameclient.Conn, n int, within time.Duration) int {
	deadline := time.Now().Add(within)
	got := 0
	for got < n {
		f, err := fc.NextBefore(deadline)
		if err != nil {
			return got
		}
		if tr, ok := f.Body.(*wire.Transfer); ok && !tr.More {
			got++
		}
	}
	return got
}

func probeKilled(ctx context.Context, e *env, t *target, r *result) {
	if isRouter(t.name) {
		killedRouter(ctx, e, t, r)
		return
	}
	killedBroker(ctx, e, t, r)
}

// killedRouter: unsettled deliveries reach a consumer that is then killed; what does
// the sender hear about them?
func killedRouter(ctx context.Context, e *env, t *target, r *result) {
	address := anycast + "killed"
	n := e.cfg.inflight
	fc, err := holdingConsumer(t.addr, address, uint32(n))
	if err != nil {
		r.err = fmt.Errorf("consumer: %w", err)
		return
	}
	f, err := newFlooder(ctx, t.url(), address, false)
	if err != nil {
		fc.Close()
		r.err = fmt.Errorf("sender: %w", err)
		return
	}
	defer f.conn.Close()
	var receipts []amqp.SendReceipt
	for i := range n {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		rc, err := f.sender.SendWithReceipt(sctx, &amqp.Message{Data: [][]byte{body1KiB}, ApplicationProperties: map[string]any{"seq": int64(i)}}, nil)
		cancel()
		if err != nil {
			r.err = fmt.Errorf("send %d: %w", i, err)
			break
		}
		receipts = append(receipts, rc)
	}
	held := readDeliveries(fc, len(receipts), 10*time.Second)
	fc.Close() // killed: the socket goes, no close frame
	tally := map[string]int{}
	for _, rc := range receipts {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		st, err := rc.Wait(wctx)
		cancel()
		tally[outcomeName(st, err)]++
	}
	r.add(
		num("unsettled deliveries held by the killed consumer", float64(held), ""),
		txt("outcomes the sender got", tallyString(tally, len(receipts))),
	)
}

func outcomeName(st amqp.DeliveryState, err error) string {
	switch s := st.(type) {
	case *amqp.StateAccepted:
		return "accepted"
	case *amqp.StateReleased:
		return "released"
	case *amqp.StateModified:
		return fmt.Sprintf("modified(delivery-failed=%v)", s.DeliveryFailed)
	case *amqp.StateRejected:
		if s.Error != nil {
			return "rejected " + string(s.Error.Condition)
		}
		return "rejected"
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "no outcome within 10s"
	}
	if err != nil {
		return "error: " + errString(err)
	}
	return fmt.Sprintf("%T", st)
}

func tallyString(t map[string]int, total int) string {
	s := ""
	for _, k := range sortedKeys(t) {
		if s != "" {
			s += ", "
		}
		s += fmt.Sprintf("%s %d", k, t[k])
	}
	return fmt.Sprintf("%s (of %d)", s, total)
}

// killedBroker: messages on a queue, a consumer takes them unsettled and is killed;
// a second consumer must get every one, marked redelivered.
func killedBroker(ctx context.Context, e *env, t *target, r *result) {
	address := "unicast.reliability-killed"
	n := e.cfg.inflight
	f, err := newFlooder(ctx, t.url(), address, false)
	if err != nil {
		r.err = fmt.Errorf("sender: %w", err)
		return
	}
	defer f.conn.Close()
	accepted := 0
	for i := range n {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := f.sender.Send(sctx, &amqp.Message{Data: [][]byte{body1KiB}, ApplicationProperties: map[string]any{"seq": int64(i)}}, nil)
		cancel()
		if err != nil {
			r.err = fmt.Errorf("send %d: %w", i, err)
			break
		}
		accepted++
	}
	fc, err := holdingConsumer(t.addr, address, uint32(n))
	if err != nil {
		r.err = fmt.Errorf("consumer: %w", err)
		return
	}
	held := readDeliveries(fc, accepted, 10*time.Second)
	fc.Close()

	got, redelivered, dups, err := drainQueue(ctx, t.url(), address, e.cfg.quiet)
	if err != nil {
		r.err = fmt.Errorf("second consumer: %w", err)
	}
	lost := 0
	for i := range accepted {
		if got[int64(i)] == 0 {
			lost++
		}
	}
	r.add(
		num("messages accepted by the broker", float64(accepted), ""),
		num("unsettled deliveries held by the killed consumer", float64(held), ""),
		num("received by a second consumer", float64(len(got)), ""),
		num("of which marked redelivered", float64(redelivered), ""),
		num("lost", float64(lost), ""),
		num("duplicated", float64(dups), ""),
	)
}

// drainQueue receives from address, accepting, until nothing arrives for quiet. It
// returns how many times each seq arrived, how many arrivals were marked redelivered
// (a header's delivery-count above 0) and the number of repeated arrivals.
func drainQueue(ctx context.Context, url, address string, quiet time.Duration) (map[int64]int, int, int, error) {
	conn, err := amqp.Dial(ctx, url, &amqp.ConnOptions{SASLType: amqp.SASLTypeAnonymous()})
	if err != nil {
		return nil, 0, 0, err
	}
	defer conn.Close()
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		return nil, 0, 0, err
	}
	rcv, err := sess.NewReceiver(ctx, address, &amqp.ReceiverOptions{Credit: 500})
	if err != nil {
		return nil, 0, 0, err
	}
	got := map[int64]int{}
	redelivered, dups := 0, 0
	for {
		rctx, cancel := context.WithTimeout(ctx, quiet)
		m, err := rcv.Receive(rctx, nil)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return got, redelivered, dups, nil
		}
		if err != nil {
			return got, redelivered, dups, err
		}
		seq, _ := m.ApplicationProperties["seq"].(int64)
		if got[seq] > 0 {
			dups++
		}
		got[seq]++
		if m.Header != nil && m.Header.DeliveryCount > 0 {
			redelivered++
		}
		if err := rcv.AcceptMessage(ctx, m); err != nil {
			return got, redelivered, dups, err
		}
	}
}
