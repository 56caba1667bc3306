package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/amqp1kit/amqp1kit/internal/frameclient"
)

// probeConns opens many idle connections and measures what each costs the
// intermediary, then whether a fresh client is still served. qpidd and the fake
// broker refuse connections beyond their max-connections (500 by default): the
// refusal is shown, then they are measured again with max-connections raised above
// --conns.
func probeConns(ctx context.Context, e *env, name string) *result {
	r := &result{}
	t, err := e.starter.start(name, "")
	if err != nil {
		r.err = err
		return r
	}
	c := connsOnce(ctx, e, t)
	t.stop()
	if c.err != nil || c.refused == "" || (name != qpidd && name != fakeBroker) {
		c.report(r, "")
		return r
	}
	r.add(txt("default configuration", c.refused))
	extra := fmt.Sprintf("max-connections=%d\n", e.cfg.conns+100)
	e.logf("  %s again with %s", name, strings.TrimSpace(extra))
	if name == fakeBroker {
		t, err = e.starter.serve(name, "--no-router", "--broker-addr", "127.0.0.1:0",
			fmt.Sprintf("--broker-max-connections=%d", e.cfg.conns+100))
	} else {
		t, err = e.starter.startReal(name, extra)
	}
	if err != nil {
		r.err = err
		return r
	}
	defer t.stop()
	connsOnce(ctx, e, t).report(r, strings.TrimSpace(extra))
	return r
}

type connsRun struct {
	n          int
	took       time.Duration
	rss0, rss1 int
	refused    string
	fresh      string
	err        error
}

func (c *connsRun) report(r *result, config string) {
	if c.err != nil {
		r.err = c.err
		return
	}
	if config != "" {
		r.add(txt("configuration", config))
	}
	r.add(
		num("idle connections open", float64(c.n), ""),
		num("time to open them", c.took.Seconds(), "s"),
		num("RSS before", mib(c.rss0), "MiB"),
		num("RSS with them open", mib(c.rss1), "MiB"),
	)
	if c.n > 0 {
		r.add(cmp(num("RSS per connection", float64(c.rss1-c.rss0)/float64(c.n), "KiB")))
	}
	if c.refused != "" {
		r.add(txt("refused", c.refused))
	}
	r.add(txt("a fresh client's round trip", c.fresh))
}

func connsOnce(ctx context.Context, e *env, t *target) *connsRun {
	c := &connsRun{}
	address := anycast + "conns"
	if !isRouter(t.name) {
		address = "unicast.reliability-conns"
	}
	// One round trip first, so that what the first client costs is not counted.
	if _, err := roundTrip(ctx, t.url(), address); err != nil {
		c.err = fmt.Errorf("first round trip: %w", err)
		return c
	}
	time.Sleep(time.Second)
	c.rss0, _ = t.rssKiB()
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
		nc, err := frameclient.OpenIdle(t.addr)
		if err != nil {
			// A limit of the intermediary's: a figure, not a failure of the probe.
			c.refused = fmt.Sprintf("connection %d refused: %s", i+1, short(err))
			e.logf("  %s: %s", t.name, c.refused)
			break
		}
		conns = append(conns, nc)
		if (i+1)%1000 == 0 {
			e.logf("  %s: %d connections open", t.name, i+1)
		}
	}
	c.took = time.Since(start)
	c.n = len(conns)
	time.Sleep(time.Second)
	c.rss1, _ = t.rssKiB()
	rt, err := roundTrip(ctx, t.url(), address)
	if err != nil {
		c.fresh = "failed: " + errString(err)
	} else {
		c.fresh = fmt.Sprintf("served (%.0f ms, connect included)", float64(rt.Microseconds())/1000)
	}
	return c
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
