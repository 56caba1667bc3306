package differential

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	amqp "github.com/Azure/go-amqp"
)

// Scenarios returns the library of scenarios, in a fixed order. They use the oslo
// deployment guide's address prefixes (unicast., exclusive., broadcast.,
// openstack.org/om/...), which qdrouterd and qpidd configured as the guide says both
// serve, and fresh names (Env.Unique), so an intermediary may be reused between
// runs.
func Scenarios() []Scenario {
	return slices.Clone(library)
}

// Lookup returns the library's scenario of that name.
func Lookup(name string) (Scenario, bool) {
	for _, s := range library {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}

var library = []Scenario{
	{Name: "open", Doc: "SASL ANONYMOUS, open and begin as go-amqp sends them, then end and close: the mechanisms offered, the open frame's properties, capabilities and limits (max-frame-size, channel-max, idle-time-out), the begin's windows and handle-max.", Run: scenarioOpen},
	{Name: "open-no-sasl", Doc: "The plain AMQP protocol header without a SASL layer, open and begin written by hand: is a client that skips SASL served?", Run: scenarioOpenNoSASL},
	{Name: "open-limits", Doc: "A client announcing max-frame-size 512, channel-max 0, handle-max 0 and an idle-time-out: the intermediary's answers, and how it splits a 2000-byte message into transfers for that client.", Run: scenarioOpenLimits},
	{Name: "credit-closest", Doc: "Credit on a closest (unicast.) address: to a sender with no consumer, when a consumer attaches, to a sender attaching once the consumer is there, and after the consumer detaches.", Run: creditScenario("unicast.diff.credit.")},
	{Name: "credit-multicast", Doc: "Credit on a multicast (broadcast.) address, the same steps as credit-closest.", Run: creditScenario("broadcast.diff.credit.")},
	{Name: "credit-balanced", Doc: "Credit on an address no prefix matches (qdrouterd's default distribution, balanced), the same steps as credit-closest.", Run: creditScenario("diffbalanced.credit.")},
	{Name: "credit-routable-anycast", Doc: "Credit on a routable anycast address (openstack.org/om/rpc/anycast/..., balanced), the same steps as credit-closest.", Run: creditScenario("openstack.org/om/rpc/anycast/diff/")},
	{Name: "multicast-copies", Doc: "Two consumers of a broadcast. address and one unsettled and one pre-settled message: are the copies pre-settled, what outcome does the sender get?", Run: scenarioMulticastCopies},
	{Name: "settle-modes", Doc: "Sender and receiver links asking for every snd-settle-mode (unsettled, settled, mixed) with every rcv-settle-mode (first, second): the modes the intermediary answers with.", Run: scenarioSettleModes},
	{Name: "outcomes", Doc: "A consumer that accepts, rejects, releases and modifies one message each: what the sender is told, and (broker) what is redelivered.", Run: scenarioOutcomes},
	{Name: "redelivery-header", Doc: "A stored message released, modified (delivery-failed), modified (undeliverable-here) and left unsettled by a consumer that goes away: the header (first-acquirer, delivery-count) of each redelivery.", For: Broker, Run: scenarioRedelivery},
	{Name: "message-sections", Doc: "A message with every header field (durable, priority, ttl) and properties (message-id, to, reply-to, correlation-id, subject, times) held 1.5 s before its consumer gives credit: what the consumer gets, remaining ttl included, and what the intermediary adds (annotations).", Run: scenarioMessageSections},
	{Name: "link-without-terminus", Doc: "Links attached with a null source or a null target, as sender and as receiver: accepted or refused, with which error.", Run: scenarioNoTerminus},
	{Name: "management", Doc: "A request to $management (GET-MGMT-NODES) with a dynamic reply address: are the links accepted, what is the answer?", Run: scenarioManagement},
	{Name: "dynamic-node", Doc: "A receiver asking for a dynamic source and a sender asking for a dynamic target: the address shapes; a message through the dynamic address; whether the address is still there after its receiver detaches.", Run: scenarioDynamicNode},
	{Name: "anonymous-relay", Doc: "A sender with a null target address sending by the to property: to an address with a consumer, with no consumer, with an unknown prefix, pre-settled, and to a multicast address with no consumer.", Run: scenarioAnonymousRelay},
	{Name: "drain", Doc: "A receiver draining credit 5 with nothing to send, then with one message waiting.", Run: scenarioDrain},
	{Name: "detach-close", Doc: "A link detached without closing it, a link detached with an error, a session ended with a link attached, a connection closed with a session and link open.", Run: scenarioDetachClose},
	{Name: "competing-consumers", Doc: "Two consumers (credit 10 each, settling nothing) of a closest (unicast.) and of a balanced (openstack.org/om/rpc/anycast/) address, four messages to each: which consumer gets which message.", Run: competingScenario(10)},
	{Name: "competing-consumers-no-credit", Doc: "The same with the first consumer granting no credit until the four messages are sent: are messages given to it all the same (they wait for its credit), and which does it get once it grants 10?", Run: competingScenario(0)},
	{Name: "consumer-loss", Doc: "A consumer holding an unsettled message goes away (its connection closes): what the sender is told, and whether the next consumer gets the message.", Run: scenarioConsumerLoss},
	{Name: "attach-variants", Doc: "Receivers asking for a selector filter, distribution-mode copy, a durable source that never expires, capabilities, outcomes and a default outcome; a sender with target capabilities and link properties: what the intermediary answers.", Run: scenarioAttachVariants},
	{Name: "max-message-size", Doc: "A receiver announcing max-message-size 1000 and a 2000-byte message sent to it: what the sender is told, what the receiver gets.", Run: scenarioMaxMessageSize},
	{Name: "aborted-transfer", Doc: "A sender (frames written by hand) starts a two-frame message, aborts it, then sends a whole one: what the consumer sees and what the sender is told.", Run: scenarioAbortedTransfer},
	{Name: "session-window", Doc: "A receiver whose session announces incoming-window 1, credit 3, three messages waiting: how many transfers the intermediary sends before the window is opened again.", Run: scenarioSessionWindow},
}

// client is one go-amqp connection with one session.
type client struct {
	conn *amqp.Conn
	sess *amqp.Session
}

// connect dials with SASL ANONYMOUS (as the oslo driver, through Proton, does) and
// begins a session.
func connect(ctx context.Context, env *Env) (*client, error) {
	c, err := env.Dial(ctx, &amqp.ConnOptions{SASLType: amqp.SASLTypeAnonymous()})
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	s, err := c.NewSession(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	return &client{conn: c, sess: s}, nil
}

// receiver attaches a receiver with manual credit (none given yet).
func (c *client) receiver(ctx context.Context, addr string, opts *amqp.ReceiverOptions) (*amqp.Receiver, error) {
	if opts == nil {
		opts = &amqp.ReceiverOptions{}
	}
	opts.Credit = -1
	r, err := c.sess.NewReceiver(ctx, addr, opts)
	if err != nil {
		return nil, fmt.Errorf("attach a receiver to %q: %w", addr, err)
	}
	return r, nil
}

func (c *client) sender(ctx context.Context, addr string, opts *amqp.SenderOptions) (*amqp.Sender, error) {
	s, err := c.sess.NewSender(ctx, addr, opts)
	if err != nil {
		return nil, fmt.Errorf("attach a sender to %q: %w", addr, err)
	}
	return s, nil
}

// stateName describes a delivery state the client was told.
func stateName(s amqp.DeliveryState) string {
	switch x := s.(type) {
	case *amqp.StateAccepted:
		return "accepted"
	case *amqp.StateReleased:
		return "released"
	case *amqp.StateRejected:
		if x.Error != nil {
			return fmt.Sprintf("rejected (%s)", x.Error.Condition)
		}
		return "rejected"
	case *amqp.StateModified:
		return fmt.Sprintf("modified (delivery-failed=%t, undeliverable-here=%t)", x.DeliveryFailed, x.UndeliverableHere)
	case nil:
		return "no state"
	}
	return fmt.Sprintf("%T", s)
}

// errName describes an error the client got, with the remote error's condition
// when there is one.
func errName(err error) string {
	var ae *amqp.Error
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, context.DeadlineExceeded):
		return "nothing within the step's time"
	case errors.As(err, &ae):
		return fmt.Sprintf("%s (%s)", ae.Condition, ae.Description)
	}
	return err.Error()
}

// sendAsync starts sending m on s (waiting for credit as long as the step allows)
// and returns a function that waits for the sender's outcome.
func sendAsync(ctx context.Context, env *Env, s *amqp.Sender, m *amqp.Message) func() (amqp.DeliveryState, error) {
	type result struct {
		state amqp.DeliveryState
		err   error
	}
	ch := make(chan result, 1)
	sctx, cancel := env.Step(ctx)
	go func() {
		defer cancel()
		rc, err := s.SendWithReceipt(sctx, m, nil)
		if err != nil {
			ch <- result{err: err}
			return
		}
		st, err := rc.Wait(sctx)
		ch <- result{st, err}
	}()
	return func() (amqp.DeliveryState, error) {
		r := <-ch
		return r.state, r.err
	}
}

// receive waits for the next message for as long as a step may take.
func receive(ctx context.Context, env *Env, r *amqp.Receiver) (*amqp.Message, error) {
	sctx, cancel := env.Step(ctx)
	defer cancel()
	return r.Receive(sctx, nil)
}

func text(s string) *amqp.Message { return amqp.NewMessage([]byte(s)) }

func scenarioOpen(ctx context.Context, env *Env) error {
	c, err := connect(ctx, env)
	if err != nil {
		return err
	}
	env.Note("open properties: %s", props(c.conn.Properties()))
	if err := c.sess.Close(ctx); err != nil {
		return fmt.Errorf("end: %w", err)
	}
	return c.conn.Close()
}

// props formats the intermediary's open properties, volatile values left out.
func props(m map[string]any) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		v := fmt.Sprint(m[k])
		if volatileKeys[k] {
			v = "<" + kindOf(v) + ">"
		}
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, " ")
}

// creditScenario returns the credit scenario for addresses starting with prefix.
func creditScenario(prefix string) func(context.Context, *Env) error {
	return func(ctx context.Context, env *Env) error {
		addr := env.Unique(prefix)
		// 1. A sender with no consumer.
		c1, err := connect(ctx, env)
		if err != nil {
			return err
		}
		snd1, err := c1.sender(ctx, addr, nil)
		if err != nil {
			env.Note("sender without consumer: %s", errName(err))
			return nil
		}
		if err := env.Quiet(ctx); err != nil {
			return err
		}
		// 2. A consumer attaches and gives credit 10.
		c2, err := connect(ctx, env)
		if err != nil {
			return err
		}
		rcv, err := c2.receiver(ctx, addr, nil)
		if err != nil {
			env.Note("receiver: %s", errName(err))
			return nil
		}
		if err := rcv.IssueCredit(10); err != nil {
			return err
		}
		if err := env.Quiet(ctx); err != nil {
			return err
		}
		// 3. A second sender attaches while the consumer is there.
		c3, err := connect(ctx, env)
		if err != nil {
			return err
		}
		snd2, err := c3.sender(ctx, addr, nil)
		if err != nil {
			env.Note("sender with a consumer: %s", errName(err))
			return nil
		}
		if err := env.Quiet(ctx); err != nil {
			return err
		}
		// 4. The first sender sends one message, the consumer accepts it.
		wait := sendAsync(ctx, env, snd1, text("credit-1"))
		m, err := receive(ctx, env, rcv)
		if err != nil {
			env.Note("receive: %s", errName(err))
		} else if err := rcv.AcceptMessage(ctx, m); err != nil {
			return fmt.Errorf("accept: %w", err)
		}
		st, err := wait()
		env.Note("first sender's outcome: %s / %s", stateName(st), errName(err))
		if err := env.Quiet(ctx); err != nil {
			return err
		}
		// 5. The consumer detaches.
		if err := rcv.Close(ctx); err != nil {
			env.Note("receiver detach: %s", errName(err))
		}
		if err := env.Quiet(ctx); err != nil {
			return err
		}
		_ = snd2
		return nil
	}
}

func scenarioMulticastCopies(ctx context.Context, env *Env) error {
	addr := env.Unique("broadcast.diff.copies.")
	var rcvs []*amqp.Receiver
	for i := range 2 {
		c, err := connect(ctx, env)
		if err != nil {
			return err
		}
		r, err := c.receiver(ctx, addr, nil)
		if err != nil {
			env.Note("receiver %d: %s", i+1, errName(err))
			return nil
		}
		if err := r.IssueCredit(10); err != nil {
			return err
		}
		rcvs = append(rcvs, r)
		if err := env.Quiet(ctx); err != nil {
			return err
		}
	}
	c, err := connect(ctx, env)
	if err != nil {
		return err
	}
	snd, err := c.sender(ctx, addr, nil)
	if err != nil {
		env.Note("sender: %s", errName(err))
		return nil
	}
	if err := env.Quiet(ctx); err != nil {
		return err
	}
	wait := sendAsync(ctx, env, snd, text("unsettled"))
	for i, r := range rcvs {
		m, err := receive(ctx, env, r)
		if err != nil {
			env.Note("receiver %d, unsettled message: %s", i+1, errName(err))
			continue
		}
		if err := r.AcceptMessage(ctx, m); err != nil {
			return fmt.Errorf("accept: %w", err)
		}
	}
	st, err := wait()
	env.Note("unsettled message's outcome: %s / %s", stateName(st), errName(err))
	if err := env.Quiet(ctx); err != nil {
		return err
	}
	sctx, cancel := env.Step(ctx)
	err = snd.Send(sctx, text("pre-settled"), &amqp.SendOptions{Settled: true})
	cancel()
	if err != nil {
		env.Note("pre-settled send: %s", errName(err))
	}
	for i, r := range rcvs {
		m, err := receive(ctx, env, r)
		if err != nil {
			env.Note("receiver %d, pre-settled message: %s", i+1, errName(err))
			continue
		}
		if err := r.AcceptMessage(ctx, m); err != nil {
			return fmt.Errorf("accept: %w", err)
		}
	}
	return env.Quiet(ctx)
}

func scenarioOutcomes(ctx context.Context, env *Env) error {
	addr := env.Unique("unicast.diff.outcomes.")
	c1, err := connect(ctx, env)
	if err != nil {
		return err
	}
	rcv, err := c1.receiver(ctx, addr, nil)
	if err != nil {
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
	settle := []struct {
		name string
		do   func(*amqp.Message) error
	}{
		{"accept", func(m *amqp.Message) error { return rcv.AcceptMessage(ctx, m) }},
		{"reject", func(m *amqp.Message) error {
			return rcv.RejectMessage(ctx, m, &amqp.Error{Condition: "amqp:precondition-failed", Description: "rejected by the differential scenario"})
		}},
		{"release", func(m *amqp.Message) error { return rcv.ReleaseMessage(ctx, m) }},
		{"modify", func(m *amqp.Message) error {
			return rcv.ModifyMessage(ctx, m, &amqp.ModifyMessageOptions{DeliveryFailed: true, UndeliverableHere: true})
		}},
	}
	for _, s := range settle {
		if err := rcv.IssueCredit(1); err != nil {
			return err
		}
		wait := sendAsync(ctx, env, snd, text(s.name))
		m, err := receive(ctx, env, rcv)
		if err != nil {
			env.Note("%s: receive: %s", s.name, errName(err))
		} else if err := s.do(m); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		st, err := wait()
		env.Note("%s: the sender's outcome: %s / %s", s.name, stateName(st), errName(err))
		if err := env.Quiet(ctx); err != nil {
			return err
		}
	}
	return nil
}

func scenarioRedelivery(ctx context.Context, env *Env) error {
	addr := env.Unique("unicast.diff.redelivery.")
	c1, err := connect(ctx, env)
	if err != nil {
		return err
	}
	snd, err := c1.sender(ctx, addr, nil)
	if err != nil {
		return err
	}
	sctx, cancel := env.Step(ctx)
	err = snd.Send(sctx, text("redelivered"), nil)
	cancel()
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if err := env.Quiet(ctx); err != nil {
		return err
	}
	c2, err := connect(ctx, env)
	if err != nil {
		return err
	}
	rcv, err := c2.receiver(ctx, addr, nil)
	if err != nil {
		return err
	}
	header := func(m *amqp.Message) string {
		if m.Header == nil {
			return "no header"
		}
		return fmt.Sprintf("first-acquirer=%t delivery-count=%d", m.Header.FirstAcquirer, m.Header.DeliveryCount)
	}
	steps := []struct {
		name string
		do   func(*amqp.Message) error
	}{
		{"release", func(m *amqp.Message) error { return rcv.ReleaseMessage(ctx, m) }},
		{"modify delivery-failed", func(m *amqp.Message) error {
			return rcv.ModifyMessage(ctx, m, &amqp.ModifyMessageOptions{DeliveryFailed: true})
		}},
		{"modify undeliverable-here", func(m *amqp.Message) error {
			return rcv.ModifyMessage(ctx, m, &amqp.ModifyMessageOptions{UndeliverableHere: true})
		}},
	}
	for _, s := range steps {
		if err := rcv.IssueCredit(1); err != nil {
			return err
		}
		m, err := receive(ctx, env, rcv)
		if err != nil {
			env.Note("before %s: receive: %s", s.name, errName(err))
			break
		}
		env.Note("received before %s: %s", s.name, header(m))
		if err := s.do(m); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		if err := env.Quiet(ctx); err != nil {
			return err
		}
	}
	// After undeliverable-here this link may not get it again: a new consumer on
	// another connection takes it, and goes away without settling.
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
	m, err := receive(ctx, env, rcv2)
	if err != nil {
		env.Note("second consumer: receive: %s", errName(err))
		return nil
	}
	env.Note("second consumer received: %s", header(m))
	if err := c3.conn.Close(); err != nil {
		env.Note("second consumer's close: %s", errName(err))
	}
	if err := env.Quiet(ctx); err != nil {
		return err
	}
	c4, err := connect(ctx, env)
	if err != nil {
		return err
	}
	rcv3, err := c4.receiver(ctx, addr, nil)
	if err != nil {
		return err
	}
	if err := rcv3.IssueCredit(1); err != nil {
		return err
	}
	m, err = receive(ctx, env, rcv3)
	if err != nil {
		env.Note("after consumer loss: receive: %s", errName(err))
		return nil
	}
	env.Note("after consumer loss: %s", header(m))
	if err := rcv3.AcceptMessage(ctx, m); err != nil {
		return err
	}
	return env.Quiet(ctx)
}

func scenarioMessageSections(ctx context.Context, env *Env) error {
	addr := env.Unique("unicast.diff.sections.")
	c1, err := connect(ctx, env)
	if err != nil {
		return err
	}
	rcv, err := c1.receiver(ctx, addr, nil)
	if err != nil {
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
	to, replyTo, subject := addr, env.Unique("unicast.diff.reply."), "differential"
	created := time.Now().Truncate(time.Millisecond)
	m := &amqp.Message{
		Header: &amqp.MessageHeader{Durable: true, Priority: 7, TTL: 60 * time.Second},
		Properties: &amqp.MessageProperties{
			MessageID:          env.Unique("msg-"),
			To:                 &to,
			Subject:            &subject,
			ReplyTo:            &replyTo,
			CorrelationID:      env.Unique("corr-"),
			CreationTime:       &created,
			AbsoluteExpiryTime: ptr(created.Add(time.Minute)),
		},
		ApplicationProperties: map[string]any{"method": "echo", "n": int64(1)},
		Value:                 `{"oslo.message": "{}"}`,
	}
	wait := sendAsync(ctx, env, snd, m)
	// The message waits in the intermediary for 1.5 s before the consumer wants it.
	if err := sleepCtx(ctx, 1500*time.Millisecond); err != nil {
		return err
	}
	if err := rcv.IssueCredit(1); err != nil {
		return err
	}
	got, err := receive(ctx, env, rcv)
	if err != nil {
		env.Note("receive: %s", errName(err))
	} else {
		if got.Header != nil {
			env.Note("received ttl %s of 1m0s (remaining: %t)", got.Header.TTL.Round(time.Second), got.Header.TTL < 59*time.Second)
		}
		if err := rcv.AcceptMessage(ctx, got); err != nil {
			return err
		}
	}
	st, err := wait()
	env.Note("the sender's outcome: %s / %s", stateName(st), errName(err))
	return env.Quiet(ctx)
}

func ptr[T any](v T) *T { return &v }

func scenarioManagement(ctx context.Context, env *Env) error {
	c, err := connect(ctx, env)
	if err != nil {
		return err
	}
	rcv, err := c.receiver(ctx, "", &amqp.ReceiverOptions{DynamicAddress: true})
	if err != nil {
		env.Note("dynamic reply receiver: %s", errName(err))
		return nil
	}
	if err := rcv.IssueCredit(1); err != nil {
		return err
	}
	snd, err := c.sender(ctx, "$management", nil)
	if err != nil {
		env.Note("sender to $management: %s", errName(err))
		return env.Quiet(ctx)
	}
	if err := env.Quiet(ctx); err != nil {
		return err
	}
	reply := rcv.Address()
	req := &amqp.Message{
		Properties:            &amqp.MessageProperties{MessageID: env.Unique("mgmt-"), ReplyTo: &reply},
		ApplicationProperties: map[string]any{"operation": "GET-MGMT-NODES", "type": "org.amqp.management", "name": "self"},
		Value:                 map[string]any{},
	}
	wait := sendAsync(ctx, env, snd, req)
	m, err := receive(ctx, env, rcv)
	if err != nil {
		env.Note("response: %s", errName(err))
	} else {
		env.Note("response: statusCode=%v", m.ApplicationProperties["statusCode"])
		if err := rcv.AcceptMessage(ctx, m); err != nil {
			return err
		}
	}
	st, err := wait()
	env.Note("the request's outcome: %s / %s", stateName(st), errName(err))
	return env.Quiet(ctx)
}

func scenarioDynamicNode(ctx context.Context, env *Env) error {
	c1, err := connect(ctx, env)
	if err != nil {
		return err
	}
	rcv, err := c1.receiver(ctx, "", &amqp.ReceiverOptions{DynamicAddress: true})
	if err != nil {
		env.Note("dynamic source: %s", errName(err))
		return nil
	}
	if err := rcv.IssueCredit(2); err != nil {
		return err
	}
	addr := rcv.Address()
	if err := env.Quiet(ctx); err != nil {
		return err
	}
	// A dynamic target.
	if s, err := c1.sender(ctx, "", &amqp.SenderOptions{DynamicAddress: true}); err != nil {
		env.Note("dynamic target: %s", errName(err))
	} else if err := env.Quiet(ctx); err != nil {
		return err
	} else if err := s.Close(ctx); err != nil {
		env.Note("dynamic target's detach: %s", errName(err))
	}
	// A message through the dynamic address.
	c2, err := connect(ctx, env)
	if err != nil {
		return err
	}
	snd, err := c2.sender(ctx, addr, nil)
	if err != nil {
		env.Note("sender to the dynamic address: %s", errName(err))
		return nil
	}
	if err := env.Quiet(ctx); err != nil {
		return err
	}
	wait := sendAsync(ctx, env, snd, text("to the dynamic address"))
	m, err := receive(ctx, env, rcv)
	if err != nil {
		env.Note("receive: %s", errName(err))
	} else if err := rcv.AcceptMessage(ctx, m); err != nil {
		return err
	}
	st, err := wait()
	env.Note("the sender's outcome: %s / %s", stateName(st), errName(err))
	if err := env.Quiet(ctx); err != nil {
		return err
	}
	// The receiver detaches: is the address still there?
	if err := rcv.Close(ctx); err != nil {
		env.Note("receiver's detach: %s", errName(err))
	}
	if err := env.Quiet(ctx); err != nil {
		return err
	}
	c3, err := connect(ctx, env)
	if err != nil {
		return err
	}
	snd2, err := c3.sender(ctx, addr, nil)
	if err != nil {
		env.Note("sender attaching after the receiver left: %s", errName(err))
		return env.Quiet(ctx)
	}
	if err := env.Quiet(ctx); err != nil {
		return err
	}
	st, err = sendAsync(ctx, env, snd2, text("after the receiver left"))()
	env.Note("send after the receiver left: %s / %s", stateName(st), errName(err))
	return env.Quiet(ctx)
}

func scenarioAnonymousRelay(ctx context.Context, env *Env) error {
	withConsumer := env.Unique("unicast.diff.relay.")
	noConsumer := env.Unique("unicast.diff.relay.")
	unknown := env.Unique("diffunknown.relay.")
	multicast := env.Unique("broadcast.diff.relay.")
	c1, err := connect(ctx, env)
	if err != nil {
		return err
	}
	rcv, err := c1.receiver(ctx, withConsumer, nil)
	if err != nil {
		return err
	}
	if err := rcv.IssueCredit(5); err != nil {
		return err
	}
	if err := env.Quiet(ctx); err != nil {
		return err
	}
	c2, err := connect(ctx, env)
	if err != nil {
		return err
	}
	snd, err := c2.sender(ctx, "", nil)
	if err != nil {
		env.Note("anonymous sender: %s", errName(err))
		return nil
	}
	if err := env.Quiet(ctx); err != nil {
		return err
	}
	msg := func(to, body string) *amqp.Message {
		m := text(body)
		m.Properties = &amqp.MessageProperties{To: &to}
		return m
	}
	wait := sendAsync(ctx, env, snd, msg(withConsumer, "with a consumer"))
	if m, err := receive(ctx, env, rcv); err != nil {
		env.Note("with a consumer: receive: %s", errName(err))
	} else if err := rcv.AcceptMessage(ctx, m); err != nil {
		return err
	}
	st, err := wait()
	env.Note("with a consumer: %s / %s", stateName(st), errName(err))
	if err := env.Quiet(ctx); err != nil {
		return err
	}
	for _, x := range []struct{ name, to string }{
		{"no consumer", noConsumer}, {"unknown prefix", unknown}, {"multicast, no consumer", multicast},
	} {
		st, err := sendAsync(ctx, env, snd, msg(x.to, x.name))()
		env.Note("%s: %s / %s", x.name, stateName(st), errName(err))
		if err := env.Quiet(ctx); err != nil {
			return err
		}
	}
	sctx, cancel := env.Step(ctx)
	err = snd.Send(sctx, msg(noConsumer, "pre-settled, no consumer"), &amqp.SendOptions{Settled: true})
	cancel()
	env.Note("pre-settled, no consumer: %s", errName(err))
	return env.Quiet(ctx)
}
