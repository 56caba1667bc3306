package main

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/amqp1kit/amqp1kit/internal/frameclient"
)

// probeConns opens many idle connections and measures what each costs the
// intermediary, then whether a fresh client is still served.
func probeConns(ctx context.Context, e *env, name string) *result {
	r := &result{}
	t, err := e.starter.start(name, "")
	if err != nil {
		r.err = err
		return r
	}
	defer t.stop()
	address := anycast + "conns"
	if !isRouter(name) {
		address = "unicast.reliability-conns"
	}
	// One round trip first, so that what the first client costs is not counted.
	if _, err := roundTrip(ctx, t.url(), address); err != nil {
		r.err = fmt.Errorf("first round trip: %w", err)
		return r
	}
	time.Sleep(time.Second)
	rss0, _ := t.rssKiB()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	start := time.Now()
	for i := range e.cfg.conns {
		if ctx.Err() != nil {
			break
		}
		c, err := frameclient.OpenIdle(t.addr)
		if err != nil {
			r.err = fmt.Errorf("connection %d: %w", i+1, err)
			break
		}
		conns = append(conns, c)
		if (i+1)%1000 == 0 {
			e.logf("  %s: %d connections open", name, i+1)
		}
	}
	took := time.Since(start)
	time.Sleep(time.Second)
	rss1, _ := t.rssKiB()
	n := len(conns)
	r.add(
		num("idle connections open", float64(n), ""),
		num("time to open them", took.Seconds(), "s"),
		num("RSS before", mib(rss0), "MiB"),
		num("RSS with them open", mib(rss1), "MiB"),
	)
	if n > 0 {
		r.add(num("RSS per connection", float64(rss1-rss0)/float64(n), "KiB"))
	}
	rt, err := roundTrip(ctx, t.url(), address)
	if err != nil {
		r.add(txt("a fresh client's round trip", "failed: "+errString(err)))
	} else {
		r.add(txt("a fresh client's round trip", fmt.Sprintf("served (%.0f ms, connect included)", float64(rt.Microseconds())/1000)))
	}
	return r
}

// roundTrip connects, attaches a receiver and a sender to address, sends one message
// and receives it; it returns how long that took.
func roundTrip(ctx context.Context, url, address string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	start := time.Now()
	conn, err := amqp.Dial(ctx, url, &amqp.ConnOptions{SASLType: amqp.SASLTypeAnonymous()})
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		return 0, err
	}
	rcv, err := sess.NewReceiver(ctx, address, nil)
	if err != nil {
		return 0, err
	}
	snd, err := sess.NewSender(ctx, address, nil)
	if err != nil {
		return 0, err
	}
	if err := sendReceive(ctx, snd, rcv); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// sendReceive sends a message, receives it, accepts it and waits for the sender's
// outcome (a router passes the consumer's on, so the send settles only then).
func sendReceive(ctx context.Context, snd *amqp.Sender, rcv *amqp.Receiver) error {
	receipt, err := snd.SendWithReceipt(ctx, &amqp.Message{Data: [][]byte{[]byte("ping")}}, nil)
	if err != nil {
		return err
	}
	m, err := rcv.Receive(ctx, nil)
	if err != nil {
		return err
	}
	if err := rcv.AcceptMessage(ctx, m); err != nil {
		return err
	}
	st, err := receipt.Wait(ctx)
	if err != nil {
		return err
	}
	if _, ok := st.(*amqp.StateAccepted); !ok {
		return fmt.Errorf("outcome %T", st)
	}
	return nil
}
