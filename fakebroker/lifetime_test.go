package fakebroker_test

import (
	"context"
	"sync"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/fakebroker"
	"github.com/amqp1kit/amqp1kit/internal/frameclient"
	"github.com/amqp1kit/amqp1kit/internal/wire"
)

// The lifetimes of nodes, as qpidd's: queues made by a pattern retire once unused and
// empty, dynamic nodes go once unused (or with their link on delete-on-close),
// subscriptions as their durability and settle mode say.

func TestPatternQueueRetiresUnusedAndEmpty(t *testing.T) {
	b := fakebroker.RunT(t, nil)
	ctx := testCtx(t)
	c := connect(t, b.URL())
	r := c.receiver("unicast.retire", 1)
	require.NoError(t, r.Close(ctx))
	info, ok := b.Node("unicast.retire")
	require.True(t, ok, "kept for its counts")
	require.True(t, info.Retired)

	// A message keeps a queue: only once it is consumed does it retire.
	s := c.sender("unicast.retire")
	info, _ = b.Node("unicast.retire")
	require.False(t, info.Retired, "a link brings it back")
	send(t, s, msg("kept"))
	require.NoError(t, s.Close(ctx))
	info, _ = b.Node("unicast.retire")
	require.False(t, info.Retired, "not empty")
	r = c.receiver("unicast.retire", 1)
	m, _ := receive(t, r)
	accept(t, r, m)
	require.NoError(t, r.Close(ctx))
	info, _ = b.Node("unicast.retire")
	require.True(t, info.Retired)

	// Configured queues never retire.
	b2 := fakebroker.RunT(t, &fakebroker.Options{Queues: []string{"configured"}})
	c2 := connect(t, b2.URL())
	require.NoError(t, c2.receiver("configured", 1).Close(ctx))
	info, _ = b2.Node("configured")
	require.False(t, info.Retired)
}

func TestCreateOnDemand(t *testing.T) {
	b := fakebroker.RunT(t, nil)
	ctx := testCtx(t)
	c := connect(t, b.URL())
	_, err := c.sess.NewReceiver(ctx, "no.pattern.here", nil)
	require.Error(t, err)
	r, err := c.sess.NewReceiver(ctx, "no.pattern.here", &amqp.ReceiverOptions{SourceCapabilities: []string{"create-on-demand"}})
	require.NoError(t, err)
	require.NoError(t, r.Close(ctx))
	info, ok := b.Node("no.pattern.here")
	require.True(t, ok)
	require.Equal(t, fakebroker.Queue, info.Kind)
	require.False(t, info.Retired, "kept: qpidd declares it")
	_, err = c.sess.NewSender(ctx, "no.pattern.topic", &amqp.SenderOptions{TargetCapabilities: []string{"create-on-demand", "topic"}})
	require.NoError(t, err)
	k, _ := b.Kind("no.pattern.topic")
	require.Equal(t, fakebroker.Topic, k)
}

func TestDynamicDeleteOnClose(t *testing.T) {
	// A dynamic node asking for lifetime-policy delete-on-close goes with its link;
	// the others attached to it are detached.
	b := fakebroker.RunT(t, nil)
	ctx := testCtx(t)
	fc, err := frameclient.Dial(b.Addr())
	require.NoError(t, err)
	defer fc.Close()
	_, err = fc.Open(&wire.Open{ContainerID: "owner"})
	require.NoError(t, err)
	_, err = fc.Begin(0, &wire.Begin{IncomingWindow: 100, OutgoingWindow: 100})
	require.NoError(t, err)
	peer, err := fc.Attach(0, &wire.Attach{Name: "reply", Role: wire.RoleReceiver, Target: &wire.Target{},
		Source: &wire.Source{Dynamic: true, DynamicNodeProperties: wire.Fields{"lifetime-policy": &wire.DeleteOnClose{}}}})
	require.NoError(t, err)
	addr := peer.Source.Address
	require.Equal(t, "owner_reply", addr)
	require.IsType(t, &wire.DeleteOnClose{}, peer.Source.DynamicNodeProperties["lifetime-policy"], "the lifetime asked for is answered")
	require.Equal(t, "move", peer.Source.DynamicNodeProperties["supported-dist-modes"])
	r := connect(t, b.URL()).receiver(addr, 1)
	require.NoError(t, fc.Write(0, &wire.Detach{Handle: 0, Closed: true}))
	_, err = r.Receive(ctx, nil)
	var le *amqp.LinkError
	require.ErrorAs(t, err, &le)
	require.Contains(t, le.Error(), "amqp:resource-deleted")
	_, ok := b.Node(addr)
	require.False(t, ok)
}

func TestSharedSubscription(t *testing.T) {
	// Links of one name with the shared capability share a subscription queue: each
	// copy goes to one of them, unsettled (a shared subscription is not exclusive).
	b := fakebroker.RunT(t, nil)
	ctx := testCtx(t)
	var rcvs []*amqp.Receiver
	for range 2 {
		r, err := connect(t, b.URL()).sess.NewReceiver(ctx, "broadcast.shared", &amqp.ReceiverOptions{
			Name: "pool", SourceCapabilities: []string{"shared"}, Credit: 10})
		require.NoError(t, err)
		rcvs = append(rcvs, r)
	}
	info, ok := b.Node("pool")
	require.True(t, ok)
	require.Equal(t, 2, info.Consumers)
	s := connect(t, b.URL()).sender("broadcast.shared")
	for i := range 4 {
		send(t, s, msg(string(rune('a'+i))))
	}
	var mu sync.Mutex
	got := 0
	for _, r := range rcvs {
		for {
			rctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			m, err := r.Receive(rctx, nil)
			cancel()
			if err != nil {
				break
			}
			in, _ := b.Node("pool")
			require.Positive(t, in.Acquired, "a shared subscription's copies are unsettled")
			accept(t, r, m)
			mu.Lock()
			got++
			mu.Unlock()
		}
	}
	require.Equal(t, 4, got, "each copy to one of the pool")
}

func TestSubscriptionTimeout(t *testing.T) {
	// A subscriber's source timeout keeps its subscription queue that long after its
	// last consumer went with its connection, on the broker's clock; a closing detach
	// deletes it at once (qpidd).
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	b := fakebroker.RunT(t, &fakebroker.Options{Now: clock})
	ctx := testCtx(t)
	c := connectAs(t, b.URL(), "sub")
	opts := &amqp.ReceiverOptions{Name: "t", SourceExpiryTimeout: 30}
	r, err := c.sess.NewReceiver(ctx, "broadcast.timeout", opts)
	require.NoError(t, err)
	require.NoError(t, r.Close(ctx))
	_, ok := b.Node("sub_t")
	require.False(t, ok, "a closing detach deletes it at once")

	c = connectAs(t, b.URL(), "sub")
	_, err = c.sess.NewReceiver(ctx, "broadcast.timeout", opts)
	require.NoError(t, err)
	require.NoError(t, c.conn.Close()) // the link goes with its connection
	require.Eventually(t, func() bool { in, _ := b.Node("sub_t"); return in.Consumers == 0 }, 5*time.Second, time.Millisecond)
	send(t, connect(t, b.URL()).sender("broadcast.timeout"), msg("meanwhile"))
	require.Equal(t, 1, b.Depth("sub_t"))
	mu.Lock()
	now = now.Add(31 * time.Second)
	mu.Unlock()
	require.Eventually(t, func() bool { _, ok := b.Node("sub_t"); return !ok }, 5*time.Second, 10*time.Millisecond)
}
