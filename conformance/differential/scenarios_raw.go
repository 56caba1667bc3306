package differential

import (
	"context"
	"errors"
	"fmt"
	"strings"

	amqp "github.com/Azure/go-amqp"

	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// rawContainer is the container-id of raw clients (masked in reports like any other).
const rawContainer = "differential-raw-client"

func scenarioOpenNoSASL(ctx context.Context, env *Env) error {
	r, err := dialRaw(ctx, env, false)
	if err != nil {
		env.Note("plain AMQP header: %s", err)
		return nil
	}
	if _, err := r.open(ctx, &wire.Open{ContainerID: rawContainer, MaxFrameSize: 65536, ChannelMax: 15}); err != nil {
		env.Note("open without SASL: %s", err)
		return nil
	}
	if _, err := r.begin(ctx, 0, &wire.Begin{IncomingWindow: 1000, OutgoingWindow: 1000, HandleMax: 63}); err != nil {
		env.Note("begin without SASL: %s", err)
		return nil
	}
	if err := r.send(0, &wire.Close{}); err != nil {
		return err
	}
	_, err = expectType[*wire.Close](ctx, r, 0, nil)
	return err
}

func scenarioOpenLimits(ctx context.Context, env *Env) error {
	addr := env.Unique("unicast.diff.limits.")
	r, err := dialRaw(ctx, env, true)
	if err != nil {
		return err
	}
	if _, err := r.open(ctx, &wire.Open{ContainerID: rawContainer, MaxFrameSize: 512, ChannelMax: 0, IdleTimeOut: 60000}); err != nil {
		return fmt.Errorf("open: %w", err)
	}
	s, err := r.begin(ctx, 0, &wire.Begin{IncomingWindow: 1000, OutgoingWindow: 1000, HandleMax: 0})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	peerCh := s.peerCh
	pa, err := s.attach(ctx, &wire.Attach{Name: "limits-receiver", Role: wire.RoleReceiver,
		SndSettleMode: wire.SenderSettleModeMixed, Source: &wire.Source{Address: addr}, Target: &wire.Target{}})
	if err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	if pa.Source == nil {
		env.Note("receiver refused")
		return env.Quiet(ctx)
	}
	init := uint32(0)
	if pa.InitialDeliveryCount != nil {
		init = *pa.InitialDeliveryCount
	}
	if err := s.flow(0, init, 1, false); err != nil {
		return err
	}
	if err := env.Quiet(ctx); err != nil {
		return err
	}
	// A 2000-byte message from a go-amqp sender on another connection.
	c, err := connect(ctx, env)
	if err != nil {
		return err
	}
	snd, err := c.sender(ctx, addr, nil)
	if err != nil {
		return err
	}
	wait := sendAsync(ctx, env, snd, amqp.NewMessage([]byte(strings.Repeat("x", 2000))))
	sctx, cancel := env.Step(ctx)
	var id uint32
	for {
		t, err := expectType[*wire.Transfer](sctx, r, peerCh, nil)
		if err != nil {
			cancel()
			env.Note("transfer: %s", errName(err))
			return nil
		}
		if t.DeliveryID != nil {
			id = *t.DeliveryID
		}
		if !t.More {
			break
		}
	}
	cancel()
	if err := r.send(0, &wire.Disposition{Role: wire.RoleReceiver, First: id, Settled: true, State: &wire.Accepted{}}); err != nil {
		return err
	}
	st, err := wait()
	env.Note("the sender's outcome: %s / %s", stateName(st), errName(err))
	if err := env.Quiet(ctx); err != nil {
		return err
	}
	if err := r.send(0, &wire.Close{}); err != nil {
		return err
	}
	_, err = expectType[*wire.Close](ctx, r, 0, nil)
	return err
}

func scenarioSettleModes(ctx context.Context, env *Env) error {
	addr := env.Unique("unicast.diff.modes.")
	s, err := openRaw(ctx, env, rawContainer)
	if err != nil {
		return err
	}
	snds := []wire.SenderSettleMode{wire.SenderSettleModeUnsettled, wire.SenderSettleModeSettled, wire.SenderSettleModeMixed}
	rcvs := []wire.ReceiverSettleMode{wire.ReceiverSettleModeFirst, wire.ReceiverSettleModeSecond}
	for _, role := range []wire.Role{wire.RoleSender, wire.RoleReceiver} {
		for _, sm := range snds {
			for _, rm := range rcvs {
				name := fmt.Sprintf("%s-%s-%s", role, sm, rm)
				h := s.handle
				pa, err := s.attach(ctx, &wire.Attach{Name: name, Role: role, SndSettleMode: sm, RcvSettleMode: rm,
					Source: &wire.Source{Address: addr}, Target: &wire.Target{Address: addr}, InitialDeliveryCount: initialCount(role)})
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				env.Note("%s: answered snd-settle-mode %s, rcv-settle-mode %s", name, pa.SndSettleMode, pa.RcvSettleMode)
				if _, err := s.detach(ctx, h, pa.Handle, true, nil); err != nil {
					return fmt.Errorf("%s: detach: %w", name, err)
				}
			}
		}
	}
	return closeRaw(ctx, s.r)
}

// initialCount is the initial-delivery-count a sender's attach must carry.
func initialCount(role wire.Role) *uint32 {
	if role == wire.RoleSender {
		return ptr(uint32(0))
	}
	return nil
}

// closeRaw closes a raw connection and waits for the intermediary's close.
func closeRaw(ctx context.Context, r *rawConn) error {
	if err := r.send(0, &wire.Close{}); err != nil {
		return err
	}
	_, err := expectType[*wire.Close](ctx, r, 0, nil)
	if errors.Is(err, errRawClosed) {
		return nil
	}
	return err
}

func scenarioNoTerminus(ctx context.Context, env *Env) error {
	addr := env.Unique("unicast.diff.terminus.")
	s, err := openRaw(ctx, env, rawContainer)
	if err != nil {
		return err
	}
	cases := []struct {
		name string
		a    *wire.Attach
	}{
		{"receiver-null-source", &wire.Attach{Role: wire.RoleReceiver, Target: &wire.Target{}}},
		{"sender-null-target", &wire.Attach{Role: wire.RoleSender, Source: &wire.Source{}, InitialDeliveryCount: ptr(uint32(0))}},
		{"receiver-null-target", &wire.Attach{Role: wire.RoleReceiver, Source: &wire.Source{Address: addr}}},
		{"sender-null-source", &wire.Attach{Role: wire.RoleSender, Target: &wire.Target{Address: addr}, InitialDeliveryCount: ptr(uint32(0))}},
	}
	for _, c := range cases {
		c.a.Name = c.name
		c.a.SndSettleMode = wire.SenderSettleModeMixed
		h := s.handle
		pa, err := s.attach(ctx, c.a)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		if err := env.Quiet(ctx); err != nil {
			return err
		}
		// Did the intermediary detach (refuse) the link?
		done, cancel := context.WithCancel(ctx)
		cancel()
		d, err := s.awaitDetach(done, pa.Handle)
		if err == nil {
			env.Note("%s: refused: %s", c.name, detachError(d))
			if err := s.r.send(s.ch, &wire.Detach{Handle: h, Closed: true}); err != nil {
				return err
			}
			continue
		}
		if errors.Is(err, errRawClosed) {
			env.Note("%s: the connection closed", c.name)
			return nil
		}
		env.Note("%s: accepted", c.name)
		sctx, cancel := env.Step(ctx)
		_, err = s.detach(sctx, h, pa.Handle, true, nil)
		cancel()
		if err != nil {
			env.Note("%s: detach: %s", c.name, errName(err))
		}
	}
	if err := env.Quiet(ctx); err != nil {
		return err
	}
	return closeRaw(ctx, s.r)
}

func detachError(d *wire.Detach) string {
	if d.Error == nil {
		return "no error"
	}
	return string(d.Error.Condition)
}

func scenarioDrain(ctx context.Context, env *Env) error {
	addr := env.Unique("unicast.diff.drain.")
	s, err := openRaw(ctx, env, rawContainer)
	if err != nil {
		return err
	}
	pa, err := s.attach(ctx, &wire.Attach{Name: "drain-receiver", Role: wire.RoleReceiver,
		SndSettleMode: wire.SenderSettleModeMixed, Source: &wire.Source{Address: addr}, Target: &wire.Target{}})
	if err != nil {
		return err
	}
	if pa.Source == nil {
		env.Note("receiver refused")
		return env.Quiet(ctx)
	}
	count := uint32(0)
	if pa.InitialDeliveryCount != nil {
		count = *pa.InitialDeliveryCount
	}
	drain := func(step string) error {
		if err := s.flow(0, count, 5, true); err != nil {
			return err
		}
		sctx, cancel := env.Step(ctx)
		defer cancel()
		for {
			f, err := s.r.expect(sctx, func(f rawFrame) bool {
				switch x := f.body.(type) {
				case *wire.Flow:
					return x.Handle != nil && *x.Handle == pa.Handle
				case *wire.Transfer:
					return x.Handle == pa.Handle
				}
				return false
			})
			if err != nil {
				env.Note("%s: no flow answering the drain: %s", step, errName(err))
				return nil
			}
			switch x := f.body.(type) {
			case *wire.Transfer:
				count++
				if x.DeliveryID != nil && !x.Settled {
					if err := s.r.send(0, &wire.Disposition{Role: wire.RoleReceiver, First: *x.DeliveryID, Settled: true, State: &wire.Accepted{}}); err != nil {
						return err
					}
				}
			case *wire.Flow:
				if x.DeliveryCount != nil {
					env.Note("%s: drained: delivery-count advanced by %d, link-credit %d", step, *x.DeliveryCount-count, deref(x.LinkCredit))
					count = *x.DeliveryCount
				}
				return nil
			}
		}
	}
	if err := drain("nothing to send"); err != nil {
		return err
	}
	if err := env.Quiet(ctx); err != nil {
		return err
	}
	// One message waiting.
	c, err := connect(ctx, env)
	if err != nil {
		return err
	}
	snd, err := c.sender(ctx, addr, nil)
	if err != nil {
		return err
	}
	wait := sendAsync(ctx, env, snd, text("waiting"))
	if err := env.Quiet(ctx); err != nil {
		return err
	}
	if err := drain("one message waiting"); err != nil {
		return err
	}
	st, err := wait()
	env.Note("the sender's outcome: %s / %s", stateName(st), errName(err))
	if err := env.Quiet(ctx); err != nil {
		return err
	}
	return closeRaw(ctx, s.r)
}

func deref(p *uint32) uint32 {
	if p == nil {
		return 0
	}
	return *p
}

func scenarioDetachClose(ctx context.Context, env *Env) error {
	addr := env.Unique("unicast.diff.detach.")
	s, err := openRaw(ctx, env, rawContainer)
	if err != nil {
		return err
	}
	receiver := func(name string) *wire.Attach {
		return &wire.Attach{Name: name, Role: wire.RoleReceiver, SndSettleMode: wire.SenderSettleModeMixed,
			Source: &wire.Source{Address: addr}, Target: &wire.Target{}}
	}
	// 1. Detach without closing.
	h := s.handle
	pa, err := s.attach(ctx, receiver("detach-not-closed"))
	if err != nil {
		return err
	}
	sctx, cancel := env.Step(ctx)
	_, err = s.detach(sctx, h, pa.Handle, false, nil)
	cancel()
	if err != nil {
		env.Note("detach closed=false: %s", errName(err))
	}
	// ... and attach the same link again (resuming it).
	h = s.handle
	pa, err = s.attach(ctx, receiver("detach-not-closed"))
	if err != nil {
		return err
	}
	sctx, cancel = env.Step(ctx)
	_, err = s.detach(sctx, h, pa.Handle, true, nil)
	cancel()
	if err != nil {
		env.Note("detach after resuming: %s", errName(err))
	}
	// 2. Detach with an error.
	h = s.handle
	pa, err = s.attach(ctx, receiver("detach-with-error"))
	if err != nil {
		return err
	}
	sctx, cancel = env.Step(ctx)
	_, err = s.detach(sctx, h, pa.Handle, true, &wire.Error{Condition: wire.ErrCondInternalError, Description: "the differential scenario fails this link"})
	cancel()
	if err != nil {
		env.Note("detach with an error: %s", errName(err))
	}
	if err := env.Quiet(ctx); err != nil {
		return err
	}
	// 3. End the session with a link attached.
	if _, err := s.attach(ctx, receiver("ended-with-session")); err != nil {
		return err
	}
	if err := s.r.send(0, &wire.End{}); err != nil {
		return err
	}
	sctx, cancel = env.Step(ctx)
	_, err = expectType[*wire.End](sctx, s.r, s.peerCh, nil)
	cancel()
	if err != nil {
		env.Note("end with a link attached: %s", errName(err))
	}
	if err := env.Quiet(ctx); err != nil {
		return err
	}
	// 4. Close the connection with a session and a link open.
	s2, err := s.r.begin(ctx, 1, &wire.Begin{IncomingWindow: 1000, OutgoingWindow: 1000, HandleMax: 63})
	if err != nil {
		return err
	}
	if _, err := s2.attach(ctx, receiver("closed-with-connection")); err != nil {
		return err
	}
	if err := env.Quiet(ctx); err != nil {
		return err
	}
	return closeRaw(ctx, s.r)
}
