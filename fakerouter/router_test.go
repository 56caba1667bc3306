package fakerouter_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/fakerouter"
	"github.com/amqp1kit/amqp1kit/internal/guideconf"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// client is one go-amqp connection with one session.
type client struct {
	t    *testing.T
	conn *amqp.Conn
	sess *amqp.Session
}

func connect(t *testing.T, url string) *client {
	t.Helper()
	ctx := testCtx(t)
	conn, err := amqp.Dial(ctx, url, nil)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	sess, err := conn.NewSession(ctx, nil)
	require.NoError(t, err)
	return &client{t: t, conn: conn, sess: sess}
}

func (c *client) receiver(addr string, credit int32) *amqp.Receiver {
	c.t.Helper()
	r, err := c.sess.NewReceiver(testCtx(c.t), addr, &amqp.ReceiverOptions{Credit: credit})
	require.NoError(c.t, err)
	return r
}

func (c *client) sender(addr string) *amqp.Sender {
	c.t.Helper()
	s, err := c.sess.NewSender(testCtx(c.t), addr, nil)
	require.NoError(c.t, err)
	return s
}

// presettled is a sender whose every delivery is sent settled, on a link of the default
// (mixed) mode, as oslo sends casts: qdrouterd answers a link that asks for
// snd-settle-mode settled with mixed, and go-amqp refuses such a link.
type presettled struct{ *amqp.Sender }

// Send sends m settled.
func (p presettled) Send(ctx context.Context, m *amqp.Message, _ *amqp.SendOptions) error {
	return p.Sender.Send(ctx, m, &amqp.SendOptions{Settled: true})
}

func (c *client) presettledSender(addr string) presettled {
	c.t.Helper()
	return presettled{c.sender(addr)}
}

// requireNoCredit checks that a go-amqp Send gave up for want of credit: go-amqp
// reports its context expiring while it waits for credit as a local
// amqp:link:transfer-limit-exceeded.
func requireNoCredit(t *testing.T, err error) {
	t.Helper()
	var ae *amqp.Error
	require.ErrorAs(t, err, &ae)
	require.Equal(t, amqp.ErrCondTransferLimitExceeded, ae.Condition, "want no credit, got %v", err)
}

func waitConsumers(t *testing.T, r *fakerouter.Router, addr string, n int) {
	t.Helper()
	require.NoError(t, r.WaitForConsumers(testCtx(t), addr, n))
}

func TestOpenPropertiesSayQdrouterd(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	c := connect(t, r.URL())
	props := c.conn.Properties()
	require.Equal(t, "qpid-dispatch-router", props["product"])
	require.NotEmpty(t, props["version"])
}

func TestDefaultAddressTable(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	cases := map[string]fakerouter.Distribution{
		"unicast.openstack.compute":                         fakerouter.Closest,
		"exclusive.openstack.compute.node1":                 fakerouter.Closest,
		"broadcast.openstack.compute.all":                   fakerouter.Multicast,
		"openstack.org/om/rpc/multicast/openstack/compute":  fakerouter.Multicast,
		"openstack.org/om/rpc/unicast/openstack/compute/n1": fakerouter.Closest,
		"openstack.org/om/rpc/anycast/openstack/compute":    fakerouter.Balanced,
		"openstack.org/om/notify/anycast/openstack/n.info":  fakerouter.Balanced,
		"openstack.org/om/notify/multicast/x":               fakerouter.Multicast,
		"openstack.org/om/notify/unicast/x":                 fakerouter.Closest,
		"broadcaster":                                       fakerouter.Balanced, // whole segments only
		"something/else":                                    fakerouter.Balanced,
	}
	for addr, want := range cases {
		require.Equal(t, want, r.Distribution(addr), addr)
	}
}

func TestBalancedSpreadsAndSettlesEndToEnd(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	ctx := testCtx(t)
	cons := connect(t, r.URL())
	r1 := cons.receiver("openstack.org/om/rpc/anycast/x/y", 10)
	r2 := cons.receiver("openstack.org/om/rpc/anycast/x/y", 10)
	waitConsumers(t, r, "openstack.org/om/rpc/anycast/x/y", 2)
	prod := connect(t, r.URL())
	snd := prod.sender("openstack.org/om/rpc/anycast/x/y")

	// End-to-end: the send completes only once the consumer accepted.
	receipt, err := snd.SendWithReceipt(ctx, amqp.NewMessage([]byte("m0")), nil)
	require.NoError(t, err)
	var got *amqp.Message
	var from *amqp.Receiver
	for _, rcv := range []*amqp.Receiver{r1, r2} {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		m, err := rcv.Receive(pctx, nil)
		cancel()
		if err == nil {
			got, from = m, rcv
			break
		}
	}
	require.NotNil(t, got, "no consumer got the message")
	wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = receipt.Wait(wctx)
	cancel()
	require.Error(t, err, "the sender's delivery must stay unsettled until the consumer settles")
	require.NoError(t, from.AcceptMessage(ctx, got))
	state, err := receipt.Wait(ctx)
	require.NoError(t, err)
	require.IsType(t, &amqp.StateAccepted{}, state)

	// Balanced: unsettled deliveries spread over both consumers.
	for i := range 10 {
		_, err := snd.SendWithReceipt(ctx, amqp.NewMessage(fmt.Appendf(nil, "m%d", i+1)), nil)
		require.NoError(t, err)
	}
	counts := map[*amqp.Receiver]int{}
	for range 10 {
		select {
		case <-ctx.Done():
			t.Fatal("messages missing")
		default:
		}
		for _, rcv := range []*amqp.Receiver{r1, r2} {
			pctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
			m, err := rcv.Receive(pctx, nil)
			cancel()
			if err == nil {
				counts[rcv]++
				_ = m
			}
		}
		if counts[r1]+counts[r2] == 10 {
			break
		}
	}
	require.Equal(t, 10, counts[r1]+counts[r2])
	require.Greater(t, counts[r1], 0, "balanced must use both consumers")
	require.Greater(t, counts[r2], 0, "balanced must use both consumers")
}

func TestConsumerOutcomeReachesSender(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	ctx := testCtx(t)
	cons := connect(t, r.URL())
	rcv := cons.receiver("unicast.q", 10)
	waitConsumers(t, r, "unicast.q", 1)
	snd := connect(t, r.URL()).sender("unicast.q")
	for _, tc := range []struct {
		settle func(*amqp.Message) error
		want   amqp.DeliveryState
	}{
		{func(m *amqp.Message) error { return rcv.RejectMessage(ctx, m, &amqp.Error{Condition: "x:bad"}) }, &amqp.StateRejected{}},
		{func(m *amqp.Message) error { return rcv.ReleaseMessage(ctx, m) }, &amqp.StateReleased{}},
		{func(m *amqp.Message) error {
			return rcv.ModifyMessage(ctx, m, &amqp.ModifyMessageOptions{DeliveryFailed: true})
		}, &amqp.StateModified{}},
		{func(m *amqp.Message) error { return rcv.AcceptMessage(ctx, m) }, &amqp.StateAccepted{}},
	} {
		receipt, err := snd.SendWithReceipt(ctx, amqp.NewMessage([]byte("x")), nil)
		require.NoError(t, err)
		m, err := rcv.Receive(ctx, nil)
		require.NoError(t, err)
		require.NoError(t, tc.settle(m))
		state, err := receipt.Wait(ctx)
		require.NoError(t, err)
		require.IsType(t, tc.want, state)
	}
	info, ok := r.Address("unicast.q")
	require.True(t, ok)
	require.Equal(t, uint64(1), info.Counts.Accepted)
	require.Equal(t, uint64(1), info.Counts.Rejected)
	require.Equal(t, uint64(1), info.Counts.Released)
	require.Equal(t, uint64(1), info.Counts.Modified)
}

func TestNoCreditWithoutConsumer(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	ctx := testCtx(t)
	snd := connect(t, r.URL()).sender("unicast.nobody")
	sctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err := snd.Send(sctx, amqp.NewMessage([]byte("x")), nil)
	cancel()
	requireNoCredit(t, err)
	require.Zero(t, r.Stats().Ingress)
	for _, l := range r.Links() {
		require.Zero(t, l.Credit, "link %s", l.Name)
	}

	// A consumer appears: the sender gets credit and the message flows.
	rcv := connect(t, r.URL()).receiver("unicast.nobody", 5)
	done := make(chan error, 1)
	go func() { done <- snd.Send(ctx, amqp.NewMessage([]byte("y")), nil) }()
	m, err := rcv.Receive(ctx, nil)
	require.NoError(t, err)
	require.NoError(t, rcv.AcceptMessage(ctx, m))
	require.NoError(t, <-done)
}

func TestMulticastDropsWithoutConsumerOption(t *testing.T) {
	r := fakerouter.RunT(t, &fakerouter.Options{MulticastDropsWithoutConsumer: true})
	ctx := testCtx(t)
	addr := "broadcast.openstack.compute.all"
	snd := connect(t, r.URL()).presettledSender(addr)
	require.NoError(t, snd.Send(ctx, amqp.NewMessage([]byte("lost")), nil))
	require.Eventually(t, func() bool { return r.Stats().Dropped == 1 }, 5*time.Second, 5*time.Millisecond)

	c := connect(t, r.URL())
	a, b := c.receiver(addr, 10), c.receiver(addr, 10)
	waitConsumers(t, r, addr, 2)
	require.NoError(t, snd.Send(ctx, amqp.NewMessage([]byte("both")), nil))
	for _, rcv := range []*amqp.Receiver{a, b} {
		m, err := rcv.Receive(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, "both", string(m.GetData()))
	}
}

func TestMulticastWaitsForConsumer(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	ctx := testCtx(t)
	snd := connect(t, r.URL()).presettledSender("broadcast.x")
	sctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err := snd.Send(sctx, amqp.NewMessage([]byte("x")), nil)
	cancel()
	requireNoCredit(t, err)
	require.Zero(t, r.Stats().Dropped)
}

func TestDynamicReplyAndAnonymousRelay(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	ctx := testCtx(t)
	c := connect(t, r.URL())
	reply, err := c.sess.NewReceiver(ctx, "", &amqp.ReceiverOptions{DynamicAddress: true, Credit: 10})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(reply.Address(), "amqp:/_topo/0/amqp1kit-router/temp."), reply.Address())
	info, ok := r.Address(reply.Address())
	require.True(t, ok)
	require.True(t, info.Dynamic)

	// A targeted sender to the dynamic address, as an RPC server replies.
	other := connect(t, r.URL())
	snd := other.sender(reply.Address())
	sent := make(chan error, 1)
	go func() { sent <- snd.Send(ctx, amqp.NewMessage([]byte("reply")), nil) }()
	m, err := reply.Receive(ctx, nil)
	require.NoError(t, err)
	require.NoError(t, reply.AcceptMessage(ctx, m))
	require.NoError(t, <-sent)

	// Anonymous relay: the to property decides.
	anon := other.sender("")
	to := reply.Address()
	go func() {
		m, err := reply.Receive(ctx, nil)
		if err == nil {
			_ = reply.AcceptMessage(ctx, m)
		}
	}()
	require.NoError(t, anon.Send(ctx, &amqp.Message{Properties: &amqp.MessageProperties{To: &to}, Data: [][]byte{[]byte("relayed")}}, nil))

	// Unroutable on an anonymous link: released back (unsettled).
	nowhere := "unicast.nowhere"
	receipt, err := anon.SendWithReceipt(ctx, &amqp.Message{Properties: &amqp.MessageProperties{To: &nowhere}, Data: [][]byte{[]byte("x")}}, nil)
	require.NoError(t, err)
	state, err := receipt.Wait(ctx)
	require.NoError(t, err)
	require.IsType(t, &amqp.StateReleased{}, state)

	// The reply address goes away with its link.
	require.NoError(t, reply.Close(ctx))
	require.Eventually(t, func() bool { info, _ := r.Address(to); return info.Consumers == 0 }, 5*time.Second, 5*time.Millisecond)
}

func TestConsumerLossGivesUnsettledBack(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	ctx := testCtx(t)
	consConn, err := amqp.Dial(ctx, r.URL(), nil)
	require.NoError(t, err)
	sess, err := consConn.NewSession(ctx, nil)
	require.NoError(t, err)
	rcv, err := sess.NewReceiver(ctx, "unicast.lossy", &amqp.ReceiverOptions{Credit: 10})
	require.NoError(t, err)
	waitConsumers(t, r, "unicast.lossy", 1)
	snd := connect(t, r.URL()).sender("unicast.lossy")
	var receipts []amqp.SendReceipt
	for range 3 {
		rc, err := snd.SendWithReceipt(ctx, amqp.NewMessage([]byte("x")), nil)
		require.NoError(t, err)
		receipts = append(receipts, rc)
	}
	for range 3 {
		_, err := rcv.Receive(ctx, nil)
		require.NoError(t, err)
	}
	consConn.Close() // gone without settling
	for _, rc := range receipts {
		state, err := rc.Wait(ctx)
		require.NoError(t, err)
		mod, ok := state.(*amqp.StateModified)
		require.True(t, ok, "got %T", state)
		require.True(t, mod.DeliveryFailed)
	}
	require.Equal(t, uint64(3), r.Stats().Modified)
}

func TestMeshRoutesAcrossRouters(t *testing.T) {
	m := fakerouter.RunMeshT(t, 3, nil)
	ctx := testCtx(t)
	rcv := connect(t, m.Router(2).URL()).receiver("unicast.far", 10)
	mc1 := connect(t, m.Router(1).URL()).receiver("broadcast.all", 10)
	mc2 := connect(t, m.Router(2).URL()).receiver("broadcast.all", 10)
	waitConsumers(t, m.Router(0), "unicast.far", 1)
	waitConsumers(t, m.Router(0), "broadcast.all", 2)
	prod := connect(t, m.Router(0).URL())
	require.NoError(t, func() error {
		done := make(chan error, 1)
		go func() { done <- prod.sender("unicast.far").Send(ctx, amqp.NewMessage([]byte("hop")), nil) }()
		msg, err := rcv.Receive(ctx, nil)
		require.NoError(t, err)
		require.NoError(t, rcv.AcceptMessage(ctx, msg))
		return <-done
	}())
	require.NoError(t, prod.presettledSender("broadcast.all").Send(ctx, amqp.NewMessage([]byte("all")), nil))
	for _, rc := range []*amqp.Receiver{mc1, mc2} {
		msg, err := rc.Receive(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, "all", string(msg.GetData()))
	}
}

func TestMeshClosestPrefersLocal(t *testing.T) {
	m := fakerouter.RunMeshT(t, 2, nil)
	ctx := testCtx(t)
	local := connect(t, m.Router(0).URL()).receiver("exclusive.svc", 50)
	remote := connect(t, m.Router(1).URL()).receiver("exclusive.svc", 50)
	waitConsumers(t, m.Router(0), "exclusive.svc", 2)
	snd := connect(t, m.Router(0).URL()).presettledSender("exclusive.svc")
	for range 10 {
		require.NoError(t, snd.Send(ctx, amqp.NewMessage([]byte("x")), nil))
	}
	for range 10 {
		_, err := local.Receive(ctx, nil)
		require.NoError(t, err)
	}
	pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err := remote.Receive(pctx, nil)
	require.Error(t, err, "closest must prefer the consumer on the router where the message entered")
}

func TestUnavailableAddressRefused(t *testing.T) {
	r := fakerouter.RunT(t, &fakerouter.Options{Addresses: []fakerouter.AddressRule{{Prefix: "closed", Distribution: fakerouter.Unavailable}}})
	c := connect(t, r.URL())
	_, err := c.sess.NewReceiver(testCtx(t), "closed.x", nil)
	var ae *amqp.Error
	require.ErrorAs(t, err, &ae)
	require.Equal(t, amqp.ErrCondNotFound, ae.Condition)
	// The session survives and other addresses work.
	c.receiver("open.x", 1)
}

// guideConf is the deployment guide's qdrouterd.conf (internal/guideconf, as the
// containers write it) with a router id of its own, a loopback listener on a free
// port, a linkRoute and a section the fake ignores.
var guideConf = strings.NewReplacer(
	"id: amqp1kit-qdrouterd", "id: Router.A",
	"host: 0.0.0.0", "host: 127.0.0.1",
	"port: 5672", "port: 0",
).Replace(guideconf.Qdrouterd) + `
linkRoute {
    prefix: queue
    connection: broker
    direction: in
}

sslProfile {
    name: none
}
`

func TestGuideConfigFileLoads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qdrouterd.conf")
	require.NoError(t, os.WriteFile(path, []byte(guideConf), 0o600))
	cfg, err := fakerouter.LoadConfig(path)
	require.NoError(t, err)
	require.Len(t, cfg.Addresses, 9)
	require.Equal(t, []string{"sslProfile"}, cfg.Ignored)
	r := fakerouter.RunT(t, &fakerouter.Options{ConfigFile: path})
	require.Equal(t, "Router.A", r.ID())
	require.True(t, strings.HasPrefix(r.Addr(), "127.0.0.1:"))
	require.Equal(t, fakerouter.Multicast, r.Distribution("broadcast.x.y.all"))
	// linkRoute prefixes are refused while no broker is connected.
	_, err = connect(t, r.URL()).sess.NewSender(testCtx(t), "queue.a", nil)
	require.Error(t, err)
}

// A configuration file is the whole configuration, as for qdrouterd: without address
// sections every address gets the default distribution (balanced), so a file that
// lacks the guide's broadcast section breaks oslo fanout here as it would there.
func TestConfigWithoutAddressesHasNone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qdrouterd.conf")
	require.NoError(t, os.WriteFile(path, []byte("listener {\n    host: 127.0.0.1\n    port: 0\n}\n"), 0o600))
	r := fakerouter.RunT(t, &fakerouter.Options{ConfigFile: path})
	require.Equal(t, fakerouter.Balanced, r.Distribution("broadcast.x.y.all"))
	require.Equal(t, fakerouter.Balanced, r.Distribution("exclusive.x.y.s"))
	// Without a file, the guide's table.
	require.Equal(t, fakerouter.Multicast, fakerouter.RunT(t, nil).Distribution("broadcast.x.y.all"))
}

func TestMalformedConfigIsAClearError(t *testing.T) {
	for name, conf := range map[string]string{
		"unclosed":          "address {\nprefix: a\n",
		"bad distribution":  "address {\nprefix: a\ndistribution: nearest\n}\n",
		"both prefix":       "address {\nprefix: a\npattern: b\ndistribution: closest\n}\n",
		"garbage":           "address {\nthis is not a key value\n}\n",
		"stray close":       "}\n",
		"linkRoute no dir":  "linkRoute {\nprefix: a\n}\n",
		"nested":            "address {\nlistener {\n}\n}\n",
		"attr outside":      "prefix: a\n",
		"bad bool":          "listener {\nauthenticatePeer: maybe\n}\n",
		"bad json":          "[[\"address\"]]",
		"port not a number": "listener {\nport: http-alt\n}\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.conf")
			require.NoError(t, os.WriteFile(path, []byte(conf), 0o600))
			_, err := fakerouter.New(&fakerouter.Options{ConfigFile: path})
			require.Error(t, err)
			require.Contains(t, err.Error(), path)
		})
	}
	_, err := fakerouter.New(&fakerouter.Options{ConfigFile: "/nonexistent/qdrouterd.conf"})
	require.Error(t, err)
}

func TestPatternRules(t *testing.T) {
	r := fakerouter.RunT(t, &fakerouter.Options{Addresses: []fakerouter.AddressRule{
		{Pattern: "a.*.c", Distribution: fakerouter.Multicast},
		{Pattern: "a/#", Distribution: fakerouter.Closest},
		{Prefix: "a.b", Distribution: fakerouter.Balanced},
	}})
	require.Equal(t, fakerouter.Multicast, r.Distribution("a.x.c"))
	require.Equal(t, fakerouter.Closest, r.Distribution("a/x/y/z"))
	require.Equal(t, fakerouter.Multicast, r.Distribution("a.b.c"), "the longer literal match wins")
	require.Equal(t, fakerouter.Balanced, r.Distribution("a.b.d"))
}

func TestFaultHooks(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	ctx := testCtx(t)
	rcv := connect(t, r.URL()).receiver("unicast.f", 10)
	waitConsumers(t, r, "unicast.f", 1)
	snd := connect(t, r.URL()).sender("unicast.f")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			m, err := rcv.Receive(ctx, nil)
			if err != nil {
				return
			}
			_ = rcv.AcceptMessage(ctx, m)
		}
	}()

	require.NoError(t, r.SetOutcome(fakerouter.OutcomeRejected))
	err := snd.Send(ctx, amqp.NewMessage([]byte("x")), nil)
	var ae *amqp.Error
	require.ErrorAs(t, err, &ae, "an overridden rejected outcome reaches the sender")
	require.NoError(t, r.SetOutcome(fakerouter.OutcomeNone))

	r.HoldSettlements()
	receipt, err := snd.SendWithReceipt(ctx, amqp.NewMessage([]byte("held")), nil)
	require.NoError(t, err)
	wctx, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
	_, err = receipt.Wait(wctx)
	cancel()
	require.Error(t, err, "held settlement must not reach the sender")
	r.ReleaseSettlements()
	_, err = receipt.Wait(ctx)
	require.NoError(t, err)

	// StopCredit grants no more credit; what a sender holds it keeps (qdrouterd never
	// takes credit back), so the blocked send is shown on a fresh sender.
	r.StopCredit()
	fresh := connect(t, r.URL()).sender("unicast.f")
	sctx, scancel := context.WithTimeout(ctx, 200*time.Millisecond)
	requireNoCredit(t, fresh.Send(sctx, amqp.NewMessage([]byte("blocked")), nil))
	scancel()
	r.ResumeCredit()
	require.NoError(t, fresh.Send(ctx, amqp.NewMessage([]byte("again")), nil))

	r.DropConnections()
	require.Eventually(t, func() bool { return r.Connections() == 0 }, 5*time.Second, 5*time.Millisecond)
	wg.Wait()
}

// StopCredit reaches anonymous-relay senders too: they hold credit of their own, not a
// node's. What they hold they keep (credit is never taken back); none is granted until
// ResumeCredit.
func TestStopCreditReachesAnonymousRelaySenders(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	ctx := testCtx(t)
	rcv := connect(t, r.URL()).receiver("unicast.anon-stop", 10)
	waitConsumers(t, r, "unicast.anon-stop", 1)
	anon := connect(t, r.URL()).sender("")
	to := "unicast.anon-stop"
	msg := func(body string) *amqp.Message {
		return &amqp.Message{Properties: &amqp.MessageProperties{To: &to}, Data: [][]byte{[]byte(body)}}
	}
	anonCredit := func() uint32 { // the one anonymous sender attached before StopCredit
		for _, l := range r.Links() {
			if l.Role == "sender" && l.Address == "" {
				return l.Credit
			}
		}
		t.Fatal("no anonymous sender link")
		return 0
	}
	require.NotZero(t, anonCredit(), "an anonymous sender starts with credit")

	r.StopCredit()
	require.NotZero(t, anonCredit(), "StopCredit leaves a sender the credit it holds")
	late := connect(t, r.URL()).sender("")
	sctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	requireNoCredit(t, late.Send(sctx, msg("blocked"), nil))
	cancel()
	require.Zero(t, r.Stats().Ingress, "nothing passed while credit was stopped")

	r.ResumeCredit()
	for _, snd := range []*amqp.Sender{anon, late} {
		done := make(chan error, 1)
		go func() { done <- snd.Send(ctx, msg("after"), nil) }()
		m, err := rcv.Receive(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, "after", string(m.GetData()))
		require.NoError(t, rcv.AcceptMessage(ctx, m))
		require.NoError(t, <-done)
	}
}

func TestTraceSeesFrames(t *testing.T) {
	var mu sync.Mutex
	var frames []string
	r := fakerouter.RunT(t, &fakerouter.Options{Trace: func(f fakerouter.Frame) {
		mu.Lock()
		frames = append(frames, f.Performative)
		mu.Unlock()
	}})
	connect(t, r.URL()).receiver("unicast.t", 1)
	mu.Lock()
	defer mu.Unlock()
	require.Contains(t, frames, "open")
	require.Contains(t, frames, "attach")
}

func TestRestartKeepsTheAddress(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	addr := r.Addr()
	c := connect(t, r.URL())
	require.NoError(t, r.Restart())
	require.Equal(t, addr, r.Addr())
	select {
	case <-c.conn.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the old connection survived the restart")
	}
	connect(t, r.URL()).receiver("unicast.after", 1)
}

func TestConsumerThatNeverGrantsCredit(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	ctx := testCtx(t)
	stingy := connect(t, r.URL())
	_, err := stingy.sess.NewReceiver(ctx, "unicast.stingy", &amqp.ReceiverOptions{Credit: -1})
	require.NoError(t, err)
	waitConsumers(t, r, "unicast.stingy", 1)
	prod := connect(t, r.URL())
	snd := prod.sender("unicast.stingy")
	// As qdrouterd, the router gives the sender credit (the address has a consumer)
	// and holds the message until the consumer grants some: the sender waits for the
	// outcome, nothing is accepted, nothing lost.
	receipt, err := snd.SendWithReceipt(ctx, amqp.NewMessage([]byte("x")), nil)
	require.NoError(t, err)
	wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = receipt.Wait(wctx)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Zero(t, r.Stats().Accepted)

	// Other clients are unharmed.
	rcv := connect(t, r.URL()).receiver("unicast.fine", 5)
	waitConsumers(t, r, "unicast.fine", 1)
	done := make(chan error, 1)
	go func() { done <- prod.sender("unicast.fine").Send(ctx, amqp.NewMessage([]byte("ok")), nil) }()
	m, err := rcv.Receive(ctx, nil)
	require.NoError(t, err)
	require.NoError(t, rcv.AcceptMessage(ctx, m))
	require.NoError(t, <-done)
}

func TestRestartForgetsOldConnections(t *testing.T) {
	r := fakerouter.RunT(t, nil)
	connect(t, r.URL()).receiver("unicast.old", 1)
	connect(t, r.URL())
	require.Equal(t, 2, r.Connections())
	require.NoError(t, r.Restart())
	require.Zero(t, r.Connections(), "Restart returns once the old connections are gone")
	require.Empty(t, r.Links())
}
