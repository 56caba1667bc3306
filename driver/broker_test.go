package driver_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amqp1kit/amqp1kit/driver"
	"github.com/amqp1kit/amqp1kit/fakebroker"
)

// The driver over the fake broker (qpidd-like): legacy addresses chosen from the
// broker's open frame, acknowledgement once stored, notifications that wait for a
// listener, requeue redelivered, recovery after a broker restart.

func TestCallCastFanoutOverBroker(t *testing.T) {
	b := fakebroker.RunT(t, nil)
	ctx := testCtx(t)
	srvT := newTransport(t, b.URL(), nil)
	a := startServer(t, nil, srvT, "compute", "node1")
	c := startServer(t, nil, srvT, "compute", "node2")
	require.NoError(t, b.WaitForConsumers(ctx, "exclusive.openstack.compute.node1", 1))
	require.NoError(t, b.WaitForConsumers(ctx, "unicast.openstack.compute", 2))
	require.NoError(t, b.WaitForConsumers(ctx, "broadcast.openstack.compute.all", 2))

	tr := newTransport(t, b.URL(), nil)
	a2, err := tr.Addresser(ctx)
	require.NoError(t, err)
	require.True(t, a2.Legacy(), "dynamic addressing must pick legacy on a qpid-cpp broker")

	cli := driver.NewRPCClient(tr, driver.Target{Topic: "compute"}, &driver.ClientOptions{Timeout: 10 * time.Second})
	res, err := cli.Call(ctx, nil, "echo", map[string]any{"value": []any{"ünï", map[string]any{"n": 1}}})
	require.NoError(t, err)
	require.JSONEq(t, `["ünï", {"n": 1}]`, string(res))
	var who string
	require.NoError(t, cli.Prepare(driver.Target{Topic: "compute", Server: "node1"}).CallInto(ctx, nil, "whoami", nil, &who))
	require.Equal(t, "node1", who)
	_, err = cli.Call(ctx, nil, "fail", map[string]any{"message": "boom"})
	var re *driver.RemoteError
	require.ErrorAs(t, err, &re)
	require.Equal(t, "ValueError", re.Class)

	require.NoError(t, cli.Cast(ctx, nil, "record", nil))
	require.Eventually(t, func() bool { return a.records()+c.records() == 1 }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, cli.Prepare(driver.Target{Topic: "compute", Fanout: true}).Cast(ctx, nil, "record", nil))
	require.Eventually(t, func() bool { return a.records()+c.records() == 3 }, 10*time.Second, 10*time.Millisecond)
	require.GreaterOrEqual(t, a.records(), 1)
	require.GreaterOrEqual(t, c.records(), 1)
}

func TestCallToNobodyOverBrokerTimesOut(t *testing.T) {
	b := fakebroker.RunT(t, nil)
	cli := driver.NewRPCClient(newTransport(t, b.URL(), nil), driver.Target{Topic: "nobody"}, &driver.ClientOptions{Timeout: 500 * time.Millisecond})
	// No deadline but the call's own: only its timeout can end it.
	_, err := cli.Call(context.Background(), nil, "echo", nil)
	require.ErrorIs(t, err, driver.ErrTimeout, "stored but never answered: a timeout")
}

func TestNotificationsWaitInBrokerAndRequeue(t *testing.T) {
	b := fakebroker.RunT(t, nil)
	ctx := testCtx(t)
	n := driver.NewNotifier(newTransport(t, b.URL(), nil), &driver.NotifierOptions{PublisherID: "p"})
	// Nobody listens yet: the broker stores (and the send is acknowledged when stored).
	for i := range 3 {
		require.NoError(t, n.Info(ctx, nil, "e.stored", map[string]any{"i": i}))
	}
	require.NoError(t, b.WaitForDepth(ctx, "unicast.openstack.notifications.info", 3))

	var mu sync.Mutex
	seen := map[string]int{}
	requeued := 0
	l, err := driver.NewListener(newTransport(t, b.URL(), nil), []driver.Target{{Topic: "notifications"}},
		func(ctx context.Context, x *driver.Notification) driver.Result {
			mu.Lock()
			defer mu.Unlock()
			if requeued == 0 {
				requeued++
				return driver.Requeue
			}
			seen[string(x.Payload)]++
			return driver.Handled
		}, &driver.ListenerOptions{AllowRequeue: true, Priorities: []driver.Priority{driver.PriorityInfo}})
	require.NoError(t, err)
	require.NoError(t, l.Start())
	t.Cleanup(func() { _ = l.Stop(context.Background()) })
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == 3 }, 10*time.Second, 10*time.Millisecond)
	mu.Lock()
	for payload, k := range seen {
		require.Equal(t, 1, k, "handled twice: %s", payload)
	}
	mu.Unlock()
	st := b.Stats()
	require.GreaterOrEqual(t, st.Released, uint64(1), "the requeue is a released disposition")
	require.NoError(t, b.WaitForDepth(ctx, "unicast.openstack.notifications.info", 0))
}

func TestReconnectAfterBrokerRestart(t *testing.T) {
	b := fakebroker.RunT(t, &fakebroker.Options{Dir: t.TempDir()})
	ctx := testCtx(t)
	startServer(t, nil, newTransport(t, b.URL(), nil), "rb", "s")
	require.NoError(t, b.WaitForConsumers(ctx, "unicast.openstack.rb", 1))
	cli := driver.NewRPCClient(newTransport(t, b.URL(), nil), driver.Target{Topic: "rb"}, &driver.ClientOptions{Timeout: 5 * time.Second})
	_, err := cli.Call(ctx, nil, "echo", map[string]any{"value": 1})
	require.NoError(t, err)
	require.NoError(t, b.Restart())
	// The server's links come back on its new connection; calls after that succeed.
	require.NoError(t, b.WaitForConsumers(ctx, "unicast.openstack.rb", 1))
	require.Eventually(t, func() bool {
		_, err := cli.Call(ctx, nil, "echo", map[string]any{"value": "after"})
		return err == nil
	}, 20*time.Second, 50*time.Millisecond, "no call succeeded after the broker restarted")
}
