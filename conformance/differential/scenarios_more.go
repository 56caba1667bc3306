package differential

import (
	"context"
	"fmt"
	"strings"

	amqp "github.com/Azure/go-amqp"

	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// competingScenario is the competing-consumers scenario with the first consumer's
// credit firstCredit (the second's is 10); a first consumer without credit is given
// credit 10 after the four messages, and what it then gets is noted.
func competingScenario(firstCredit uint32) func(ctx context.Context, env *Env) error {
	return func(ctx context.Context, env *Env) error { return competingConsumers(ctx, env, firstCredit) }
}

func competingConsumers(ctx context.Context, env *Env, firstCredit uint32) error {
	for _, prefix := range []string{"unicast.diff.competing.", "openstack.org/om/rpc/anycast/diff/competing/"} {
		addr := env.Unique(prefix)
		var rcvs []*amqp.Receiver
		refused := false
		for i := range 2 {
			c, err := connect(ctx, env)
			if err != nil {
				return err
			}
			r, err := c.receiver(ctx, addr, nil)
			if err != nil {
				env.Note("%s consumer %d: %s", prefix, i+1, errName(err))
				refused = true
				break
			}
			if credit := []uint32{firstCredit, 10}[i]; credit > 0 {
				if err := r.IssueCredit(credit); err != nil {
					return err
				}
			}
			rcvs = append(rcvs, r)
		}
		if refused {
			continue
		}
		if err := env.Quiet(ctx); err != nil {
			return err
		}
		c, err := connect(ctx, env)
		if err != nil {
			return err
		}
		snd, err := c.sender(ctx, addr, nil)
		if err != nil {
			env.Note("%s sender: %s", prefix, errName(err))
			continue
		}
		if err := env.Quiet(ctx); err != nil {
			return err
		}
		var held [][2]any // receiver index, message
		var waits []func() (amqp.DeliveryState, error)
		var got []string
		for i := range 4 {
			waits = append(waits, sendAsync(ctx, env, snd, text(fmt.Sprintf("message %d", i+1))))
			if err := env.Quiet(ctx); err != nil {
				return err
			}
			who := "none"
			for j, r := range rcvs {
				if m := r.Prefetched(); m != nil {
					who = fmt.Sprintf("consumer %d", j+1)
					held = append(held, [2]any{j, m})
				}
			}
			got = append(got, who)
		}
		env.Note("%s: messages 1-4 went to %s", prefix, strings.Join(got, ", "))
		if firstCredit == 0 {
			if err := rcvs[0].IssueCredit(10); err != nil {
				return err
			}
			if err := env.Quiet(ctx); err != nil {
				return err
			}
			var late []string
			for m := rcvs[0].Prefetched(); m != nil; m = rcvs[0].Prefetched() {
				late = append(late, string(m.GetData()))
				held = append(held, [2]any{0, m})
			}
			env.Note("%s: consumer 1, given credit 10 afterwards, got %q", prefix, late)
		}
		for _, h := range held {
			if err := rcvs[h[0].(int)].AcceptMessage(ctx, h[1].(*amqp.Message)); err != nil {
				return err
			}
		}
		var outcomes []string
		for _, w := range waits {
			st, err := w()
			outcomes = append(outcomes, stateName(st)+"/"+errName(err))
		}
		env.Note("%s: the sender's outcomes: %s", prefix, strings.Join(outcomes, ", "))
		if err := env.Quiet(ctx); err != nil {
			return err
		}
	}
	return nil
}

func scenarioConsumerLoss(ctx context.Context, env *Env) error {
	addr := env.Unique("unicast.diff.loss.")
	c1, err := connect(ctx, env)
	if err != nil {
		return err
	}
	rcv, err := c1.receiver(ctx, addr, nil)
	if err != nil {
		return err
	}
	if err := rcv.IssueCredit(1); err != nil {
		return err
	}
	if err := env.Quiet(ctx); err != nil {
		return err
	}
	c2, err := connect(ctx, env)
	if err != nil {
		return err
	}
	snd, err := c2.sender(ctx, addr, nil)
	if err != nil {
		return err
	}
	if err := env.Quiet(ctx); err != nil {
		return err
	}
	wait := sendAsync(ctx, env, snd, text("held by a consumer that goes away"))
	if _, err := receive(ctx, env, rcv); err != nil {
		env.Note("first consumer: receive: %s", errName(err))
	}
	if err := env.Quiet(ctx); err != nil {
		return err
	}
	if err := c1.conn.Close(); err != nil {
		env.Note("first consumer's close: %s", errName(err))
	}
	if err := env.Quiet(ctx); err != nil {
		return err
	}
	c3, err := connect(ctx, env)
	if err != nil {
		return err
	}
	rcv2, err := c3.receiver(ctx, addr, nil)
	if err != nil {
		return err
	}
	if err := rcv2.IssueCredit(1); err != nil {
		return err
	}
	st, err := wait()
	env.Note("the sender's outcome: %s / %s", stateName(st), errName(err))
	if m, err := receive(ctx, env, rcv2); err != nil {
		env.Note("second consumer: %s", errName(err))
	} else {
		env.Note("second consumer got it again")
		if err := rcv2.AcceptMessage(ctx, m); err != nil {
			return err
		}
	}
	return env.Quiet(ctx)
}

func scenarioAttachVariants(ctx context.Context, env *Env) error {
	addr := env.Unique("unicast.diff.variants.")
	s, err := openRaw(ctx, env, rawContainer)
	if err != nil {
		return err
	}
	receiver := func(name string, src *wire.Source) *wire.Attach {
		src.Address = addr
		return &wire.Attach{Name: name, Role: wire.RoleReceiver, SndSettleMode: wire.SenderSettleModeMixed, Source: src, Target: &wire.Target{}}
	}
	selector := &wire.Described{Descriptor: wire.Symbol("apache.org:selector-filter:string"), Value: "color = 'red'"}
	cases := []*wire.Attach{
		receiver("selector-filter", &wire.Source{Filter: wire.Fields{"selector": selector}}),
		receiver("distribution-copy", &wire.Source{DistributionMode: "copy"}),
		receiver("durable-never-expires", &wire.Source{Durable: wire.TerminusDurabilityUnsettledState, ExpiryPolicy: wire.TerminusExpiryPolicyNever, Timeout: 60}),
		receiver("source-capabilities", &wire.Source{Capabilities: []wire.Symbol{"queue", "shared"}}),
		receiver("outcomes", &wire.Source{Outcomes: []wire.Symbol{"amqp:accepted:list", "amqp:rejected:list"}, DefaultOutcome: &wire.Released{}}),
		{Name: "sender-variants", Role: wire.RoleSender, SndSettleMode: wire.SenderSettleModeMixed, InitialDeliveryCount: ptr(uint32(0)),
			Source: &wire.Source{}, Target: &wire.Target{Address: addr, Durable: wire.TerminusDurabilityConfiguration, Capabilities: []wire.Symbol{"topic"}},
			OfferedCapabilities: []wire.Symbol{"differential"}, DesiredCapabilities: []wire.Symbol{"ANONYMOUS-RELAY"},
			Properties: wire.Fields{"differential": "yes"}},
	}
	for _, a := range cases {
		h := s.handle
		pa, err := s.attach(ctx, a)
		if err != nil {
			return fmt.Errorf("%s: %w", a.Name, err)
		}
		if err := env.Quiet(ctx); err != nil {
			return err
		}
		done, cancel := context.WithCancel(ctx)
		cancel()
		if d, err := s.awaitDetach(done, pa.Handle); err == nil {
			env.Note("%s: refused: %s", a.Name, detachError(d))
			if err := s.r.send(s.ch, &wire.Detach{Handle: h, Closed: true}); err != nil {
				return err
			}
			continue
		}
		sctx, cancel := env.Step(ctx)
		_, err = s.detach(sctx, h, pa.Handle, true, nil)
		cancel()
		if err != nil {
			env.Note("%s: detach: %s", a.Name, errName(err))
		}
	}
	return closeRaw(ctx, s.r)
}

func scenarioMaxMessageSize(ctx context.Context, env *Env) error {
	addr := env.Unique("unicast.diff.maxsize.")
	s, err := openRaw(ctx, env, rawContainer)
	if err != nil {
		return err
	}
	pa, err := s.attach(ctx, &wire.Attach{Name: "small-receiver", Role: wire.RoleReceiver, SndSettleMode: wire.SenderSettleModeMixed,
		Source: &wire.Source{Address: addr}, Target: &wire.Target{}, MaxMessageSize: 1000})
	if err != nil {
		return err
	}
	if pa.Source == nil {
		env.Note("receiver refused")
		return env.Quiet(ctx)
	}
	if err := s.flow(0, deref(pa.InitialDeliveryCount), 1, false); err != nil {
		return err
	}
	if err := env.Quiet(ctx); err != nil {
		return err
	}
	c, err := connect(ctx, env)
	if err != nil {
		return err
	}
	snd, err := c.sender(ctx, addr, nil)
	if err != nil {
		return err
	}
	if err := env.Quiet(ctx); err != nil {
		return err
	}
	wait := sendAsync(ctx, env, snd, amqp.NewMessage([]byte(strings.Repeat("y", 2000))))
	sctx, cancel := env.Step(ctx)
	t, err := expectType[*wire.Transfer](sctx, s.r, s.peerCh, func(x *wire.Transfer) bool { return !x.More })
	cancel()
	if err != nil {
		env.Note("the small receiver got nothing: %s", errName(err))
	} else {
		env.Note("the small receiver got the message (aborted=%t)", t.Aborted)
		if err := s.r.send(0, &wire.Disposition{Role: wire.RoleReceiver, First: lastDelivery(s), Settled: true, State: &wire.Accepted{}}); err != nil {
			return err
		}
	}
	st, err := wait()
	env.Note("the sender's outcome: %s / %s", stateName(st), errName(err))
	if err := env.Quiet(ctx); err != nil {
		return err
	}
	return closeRaw(ctx, s.r)
}

// lastDelivery is the delivery-id of the last transfer the session received that
// carried one.
func lastDelivery(s *rawSession) uint32 {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	for i := len(s.r.frames) - 1; i >= 0; i-- {
		if t, ok := s.r.frames[i].body.(*wire.Transfer); ok && s.r.frames[i].channel == s.peerCh && t.DeliveryID != nil {
			return *t.DeliveryID
		}
	}
	return 0
}

func scenarioAbortedTransfer(ctx context.Context, env *Env) error {
	addr := env.Unique("unicast.diff.aborted.")
	c, err := connect(ctx, env)
	if err != nil {
		return err
	}
	rcv, err := c.receiver(ctx, addr, nil)
	if err != nil {
		return err
	}
	if err := rcv.IssueCredit(5); err != nil {
		return err
	}
	if err := env.Quiet(ctx); err != nil {
		return err
	}
	s, err := openRaw(ctx, env, rawContainer)
	if err != nil {
		return err
	}
	pa, err := s.attach(ctx, &wire.Attach{Name: "aborting-sender", Role: wire.RoleSender, SndSettleMode: wire.SenderSettleModeMixed,
		InitialDeliveryCount: ptr(uint32(0)), Source: &wire.Source{}, Target: &wire.Target{Address: addr}})
	if err != nil {
		return err
	}
	sctx, cancel := env.Step(ctx)
	_, err = expectType[*wire.Flow](sctx, s.r, s.peerCh, func(f *wire.Flow) bool {
		return f.Handle != nil && *f.Handle == pa.Handle && f.LinkCredit != nil && *f.LinkCredit > 0
	})
	cancel()
	if err != nil {
		env.Note("no credit for the sender: %s", errName(err))
		return nil
	}
	payload, err := (&wire.Message{Data: [][]byte{[]byte(strings.Repeat("a", 600))}}).AppendTo(nil)
	if err != nil {
		return err
	}
	frame := func(t *wire.Transfer, part []byte) error {
		out, err := wire.AppendFrame(nil, wire.FrameAMQP, s.ch, t, part)
		if err != nil {
			return err
		}
		_, err = s.r.c.Write(out)
		return err
	}
	// Delivery 0: the first half, then aborted.
	if err := frame(&wire.Transfer{Handle: 0, DeliveryID: ptr(uint32(0)), DeliveryTag: []byte("aborted"), MessageFormat: ptr(uint32(0)), More: true}, payload[:300]); err != nil {
		return err
	}
	if err := env.Quiet(ctx); err != nil {
		return err
	}
	if err := frame(&wire.Transfer{Handle: 0, Aborted: true}, nil); err != nil {
		return err
	}
	if err := env.Quiet(ctx); err != nil {
		return err
	}
	// Delivery 1: whole.
	if err := frame(&wire.Transfer{Handle: 0, DeliveryID: ptr(uint32(1)), DeliveryTag: []byte("whole"), MessageFormat: ptr(uint32(0))}, payload); err != nil {
		return err
	}
	m, err := receive(ctx, env, rcv)
	if err != nil {
		env.Note("the consumer got nothing: %s", errName(err))
	} else {
		env.Note("the consumer got %d bytes", len(m.GetData()))
		if err := rcv.AcceptMessage(ctx, m); err != nil {
			return err
		}
	}
	sctx, cancel = env.Step(ctx)
	d, err := expectType[*wire.Disposition](sctx, s.r, s.peerCh, func(d *wire.Disposition) bool { return d.Settled })
	cancel()
	if err != nil {
		env.Note("the sender got no settlement: %s", errName(err))
	} else {
		env.Note("the sender's delivery %d settled: %T", d.First, d.State)
	}
	if err := env.Quiet(ctx); err != nil {
		return err
	}
	return closeRaw(ctx, s.r)
}

func scenarioSessionWindow(ctx context.Context, env *Env) error {
	addr := env.Unique("unicast.diff.window.")
	r, err := dialRaw(ctx, env, true)
	if err != nil {
		return err
	}
	if _, err := r.open(ctx, &wire.Open{ContainerID: rawContainer, MaxFrameSize: 65536, ChannelMax: 15}); err != nil {
		return err
	}
	s, err := r.begin(ctx, 0, &wire.Begin{IncomingWindow: 1, OutgoingWindow: 1000, HandleMax: 63})
	if err != nil {
		return err
	}
	pa, err := s.attach(ctx, &wire.Attach{Name: "window-receiver", Role: wire.RoleReceiver, SndSettleMode: wire.SenderSettleModeMixed,
		Source: &wire.Source{Address: addr}, Target: &wire.Target{}})
	if err != nil {
		return err
	}
	if pa.Source == nil {
		env.Note("receiver refused")
		return env.Quiet(ctx)
	}
	// The receiver's flow keeps the session's window at 1.
	next := s.peerNext
	if err := r.send(0, &wire.Flow{NextIncomingID: &next, IncomingWindow: 1, OutgoingWindow: 1000,
		Handle: ptr(uint32(0)), DeliveryCount: ptr(deref(pa.InitialDeliveryCount)), LinkCredit: ptr(uint32(3))}); err != nil {
		return err
	}
	if err := env.Quiet(ctx); err != nil {
		return err
	}
	c, err := connect(ctx, env)
	if err != nil {
		return err
	}
	snd, err := c.sender(ctx, addr, nil)
	if err != nil {
		return err
	}
	var receipts []amqp.SendReceipt
	for i := range 3 {
		sctx, cancel := env.Step(ctx)
		rc, err := snd.SendWithReceipt(sctx, text(fmt.Sprintf("window %d", i+1)), nil)
		cancel()
		if err != nil {
			env.Note("send %d: %s", i+1, errName(err))
			break
		}
		receipts = append(receipts, rc)
		// Each transfer is answered (or held) before the next is sent: whether an
		// intermediary reads three transfers at once or one by one is timing, not
		// behaviour.
		if err := env.Quiet(ctx); err != nil {
			return err
		}
	}
	count := func() uint32 {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.transfers[s.peerCh]
	}
	for round := 1; round <= 3; round++ {
		if err := env.Quiet(ctx); err != nil {
			return err
		}
		n := count()
		env.Note("round %d: %d transfers received in all", round, n)
		// Open the window by one again.
		next := s.peerNext + n
		if err := r.send(0, &wire.Flow{NextIncomingID: &next, IncomingWindow: 1, OutgoingWindow: 1000}); err != nil {
			return err
		}
		if n >= 3 {
			break
		}
	}
	if n := count(); n > 0 {
		if err := r.send(0, &wire.Disposition{Role: wire.RoleReceiver, First: lastDelivery(s) - (n - 1), Last: ptr(lastDelivery(s)), Settled: true, State: &wire.Accepted{}}); err != nil {
			return err
		}
	}
	var outcomes []string
	for _, rc := range receipts {
		sctx, cancel := env.Step(ctx)
		st, err := rc.Wait(sctx)
		cancel()
		outcomes = append(outcomes, stateName(st)+"/"+errName(err))
	}
	env.Note("the sender's outcomes: %s", strings.Join(outcomes, ", "))
	if err := env.Quiet(ctx); err != nil {
		return err
	}
	return closeRaw(ctx, r)
}
